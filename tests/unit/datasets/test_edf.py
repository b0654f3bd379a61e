"""EDF reading/writing through pyEDFlib: round trip, header errors, and the real CHB-MIT clips (checked
against an independent struct decode)."""
from __future__ import annotations

import struct
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from hbac.datasets.edf import read_edf, write_edf
from hbac.errors import DataError

REPO = REPO_ROOT
CLIPS = REPO.parent / "shared" / "data" / "chbmit" / "clips"
CHB01_LABELS = [
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1",
    "FP2-F4", "F4-C4", "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
    "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9", "FT9-FT10", "FT10-T8", "T8-P8",
]
needs_clips = pytest.mark.skipif(not CLIPS.exists(), reason="shared CHB-MIT clips not present")
START = datetime(2021, 3, 4, 23, 59, 58)


def _signals(c: int = 4, seconds: int = 5, fs: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-700, 700, size=(c, seconds * fs))


def test_round_trip(tmp_path: Path) -> None:
    x = _signals()
    labels = ["FP1-F7", "F7-T7", "T7-P7", "EKG"]
    p = tmp_path / "a.edf"
    write_edf(p, x, 256, labels, START)
    rec = read_edf(p)
    assert rec.labels == labels
    np.testing.assert_array_equal(rec.fs, 256.0)
    assert rec.start == START
    assert rec.n_records == 5 and rec.duration_s == 5.0 and rec.n_times() == 5 * 256
    assert rec.header_bytes == 256 * 5 and p.stat().st_size == 256 * 5 + 4 * 5 * 256 * 2
    np.testing.assert_array_equal(rec.phys_min, -800.0)
    np.testing.assert_array_equal(rec.dig_max, 32767.0)
    y = rec.signals
    assert y.dtype == np.float32 and y.shape == x.shape
    step = 1600.0 / 65535.0  # one digital unit in µV
    assert np.abs(y - x).max() <= step / 2 + 1e-3
    # selected channels by name (case-insensitive) and by index give the same rows
    np.testing.assert_array_equal(rec.read(["t7-p7", 0]), y[[2, 0]])


def test_per_channel_range_clip_and_padding(tmp_path: Path) -> None:
    x = _signals(c=2, seconds=3)
    x[0, 10] = 5000.0  # outside ±800: clipped
    x = x[:, :-100]  # not a whole number of seconds: padded with zeros
    p = tmp_path / "b.edf"
    write_edf(p, x, 256, ["A", "B"], START, phys_min=[-800, -200.5], phys_max=[800, 200.5])
    rec = read_edf(p)
    np.testing.assert_allclose(rec.phys_min, [-800, -200.5])
    y = rec.read()
    assert y.shape == (2, 3 * 256)
    assert y[0, 10] == pytest.approx(800.0, abs=0.02)
    assert np.all(np.abs(y[1]) <= 200.5 + 1e-3)
    np.testing.assert_allclose(y[:, -100:], 0.0, atol=0.02)


def test_write_rejects_fractional_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="integer sampling rate"):
        write_edf(tmp_path / "c.edf", _signals(c=1), 200.5, ["A"], START)


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    p = tmp_path / "good.edf"
    write_edf(p, _signals(c=2), 256, ["A", "B"], START)
    raw = p.read_bytes()
    for n, msg in ((100, "truncated EDF header"), (256 + 300, "truncated EDF header"), (len(raw) - 10, "Filesize")):
        bad = tmp_path / f"cut{n}.edf"
        bad.write_bytes(raw[:n])
        with pytest.raises(DataError, match=msg) as e:
            read_edf(bad)
        assert str(bad) in str(e.value)
    # a non-numeric field: number of data records
    bad = tmp_path / "corrupt.edf"
    bad.write_bytes(raw[:236] + b"abc     " + raw[244:])
    with pytest.raises(DataError, match="Number of Datarecords") as e:
        read_edf(bad)
    assert str(bad) in str(e.value)
    with pytest.raises(FileNotFoundError):
        read_edf(tmp_path / "absent.edf")


@needs_clips
def test_real_clip_header_and_values() -> None:
    path = CLIPS / "chb01_03_Seizure.edf"
    rec = read_edf(path)
    assert rec.labels == CHB01_LABELS and rec.labels.count("T8-P8") == 2
    np.testing.assert_array_equal(rec.fs, 256.0)
    assert rec.start.time() == datetime(2000, 1, 1, 14, 32, 59).time()
    assert rec.duration_s == 41.0
    x = rec.signals
    assert x.shape == (23, 41 * 256) and x.dtype == np.float32
    assert np.abs(x).max() <= 800.0 and x.std() > 5.0  # µV, not raw digital units
    np.testing.assert_array_equal(x[14], x[22])  # the duplicate T8-P8 carries the same data
    # independent decode of the first data record with struct and the header scaling
    raw = path.read_bytes()
    ns = 23
    words = struct.unpack(f"<{ns * 256}h", raw[256 * (ns + 1) : 256 * (ns + 1) + ns * 256 * 2])
    dig = np.array(words, dtype=np.float64).reshape(ns, 256)
    hdr = raw[256:].decode("latin-1")
    off = ns * (16 + 80 + 8)
    pmin = float(hdr[off : off + 8])
    pmax = float(hdr[off + ns * 8 : off + ns * 8 + 8])
    dmin = float(hdr[off + ns * 16 : off + ns * 16 + 8])
    dmax = float(hdr[off + ns * 24 : off + ns * 24 + 8])
    assert (pmin, pmax) == (-800.0, 800.0)
    expect = (dig - dmin) * (pmax - pmin) / (dmax - dmin) + pmin
    np.testing.assert_allclose(x[:, :256], expect, rtol=0, atol=1e-3)


@needs_clips
def test_real_nonseizure_clip() -> None:
    rec = read_edf(CLIPS / "chb01_03_NonSeizure.edf")
    assert rec.start.strftime("%H:%M:%S") == "13:43:04"  # the summary's file start of chb01_03
    assert rec.n_signals == 23 and rec.read(["FP1-F7"]).shape == (1, 41 * 256)
