"""TUSZ adapter: .csv_bi/.csv parsing with their header comments, layout quirks, referential → TCP montage."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hbac.config import DataConfig
from hbac.datasets import get_adapter
from hbac.datasets.edf import read_edf
from hbac.datasets.tusz import annotation_path, find_files, parse_annotation
from hbac.errors import ConfigError, DataError

HEAD = ("# version = csv_v1.0.0\n# bname = aaaaaaac_s001_t000\n# duration = 301.00 secs\n"
        "# montage_file = $NEDC_NFC/lib/nedc_eas_default_montage.txt\n#\n")


def test_csv_bi_and_csv(tmp_path: Path) -> None:
    bi = tmp_path / "a.csv_bi"
    bi.write_text(HEAD + "channel,start_time,stop_time,label,confidence\n"
                  "TERM,0.0000,36.8868,bckg,1.0000\nTERM,36.8868,183.3055,seiz,1.0000\nTERM,183.3055,301.0000,bckg,1.0000\n")
    a = parse_annotation(bi)
    assert a.seizures == [(36.8868, 183.3055)] and a.duration_s == 301.0 and a.labels == ["seiz"]
    # event-based .csv: per-channel rows, the term seizure is their union; labels are seizure types, any case
    ev = tmp_path / "a.csv"
    ev.write_text(HEAD + "channel,start_time,stop_time,label,confidence\n"
                  "FP1-F7,0.0,40.0,bckg,1.0\nFP1-F7,40.0,90.0,FNSZ,1.0\nF7-T3,35.5,60.0,fnsz,1.0\n"
                  "T3-T5,85.0,120.0,fnsz,1.0\nC3-CZ,200.0,210.0,cpsz,1.0\n\n")
    b = parse_annotation(ev)
    assert b.seizures == [(35.5, 120.0), (200.0, 210.0)] and b.labels == ["cpsz", "fnsz"]
    # the .csv_bi wins when both exist
    edf = tmp_path / "a.edf"
    assert annotation_path(edf) == bi
    bi.unlink()
    assert annotation_path(edf) == ev


def test_annotation_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "b.csv_bi"
    p.write_text(HEAD + "channel,start_time,label\nTERM,0,bckg\n")
    with pytest.raises(DataError, match="stop_time") as e:
        parse_annotation(p)
    assert str(p) in str(e.value)
    p.write_text(HEAD + "channel,start_time,stop_time,label,confidence\nTERM,50.0,40.0,seiz,1.0\n")
    with pytest.raises(DataError, match="line 7: stop_time 40.0 before start_time 50.0"):
        parse_annotation(p)
    p.write_text(HEAD + "channel,start_time,stop_time,label,confidence\nTERM,abc,40.0,seiz,1.0\n")
    with pytest.raises(DataError, match="line 7"):
        parse_annotation(p)


@pytest.fixture(scope="module")
def tusz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hbac.datasets.synthetic import write_tusz

    root = tmp_path_factory.mktemp("tusz")
    write_tusz(root, n_subjects=2, n_files=2, file_s=60.0, seed=5)
    return root


def _cfg(root: Path, montage: str = "tcp", fs: float | None = 128.0) -> DataConfig:
    cfg = DataConfig(name="t", dataset="tusz", data_dir=str(root))
    cfg.eeg.montage, cfg.eeg.fs = montage, fs
    return cfg


def test_layout_rates_and_tcp_montage(tusz_root: Path) -> None:
    files = find_files(tusz_root)
    assert [f.split for f in files] == ["dev", "dev", "train", "train"]
    assert {f.montage for f in files} == {"01_tcp_ar", "02_tcp_le"}
    rates = {float(read_edf(f.edf).fs[0]) for f in files}
    assert rates == {250.0, 256.0, 400.0, 512.0}  # one rate per file, varying between files
    a, cfg = get_adapter("tusz"), _cfg(tusz_root)
    table = a.table(cfg)
    assert table.recording_id.nunique() == 4 and set(table.tusz_split) == {"train", "dev"}
    for f in files:
        x, fs = a.read(cfg, f.recording_id)
        rec = read_edf(f.edf)
        assert x.shape == (22, rec.n_times(0)) and fs == rec.fs[0] and a.missing_reason(cfg, f.recording_id) is None
        ref = "LE" if f.montage.endswith("le") else "REF"
        u = rec.read([f"EEG FP1-{ref}", f"EEG F7-{ref}", f"EEG A1-{ref}", f"EEG T3-{ref}"])
        np.testing.assert_allclose(x[0], u[0] - u[1], atol=1e-4)  # FP1-F7
        np.testing.assert_allclose(x[8], u[2] - u[3], atol=1e-4)  # A1-T3
    with pytest.raises(ConfigError, match="eeg.fs"):
        a.table(_cfg(tusz_root, fs=None))


def test_quirks_missing_ears_and_duplicates(tusz_root: Path, tmp_path: Path) -> None:
    from hbac.datasets.edf import write_edf

    f = find_files(tusz_root)[0]
    rec = read_edf(f.edf)
    keep = [i for i, lab in enumerate(rec.labels) if "A1" not in lab and "A2" not in lab]  # an `_a` montage file
    folder = tmp_path / "edf" / "eval" / f.subject / "s001_2015_03_02" / "03_tcp_ar_a"
    write_edf(folder / f"{f.recording_id}.edf", rec.read(keep), float(rec.fs[0]), [rec.labels[i] for i in keep], rec.start)
    (folder / f"{f.recording_id}.csv_bi").write_text(f.edf.with_suffix(".csv_bi").read_text())
    a = get_adapter("tusz")
    reason = a.missing_reason(_cfg(tmp_path), f.recording_id)
    assert reason is not None and "A1-T3" in reason and "T4-A2" in reason
    assert a.missing_reason(_cfg(tmp_path, montage="chbmit_banana"), f.recording_id) is None  # no ears needed
    # the same recording in two montage folders is an error naming both
    other = tmp_path / "edf" / "eval" / f.subject / "s001_2015_03_02" / "01_tcp_ar"
    other.mkdir(parents=True)
    (other / f"{f.recording_id}.edf").write_bytes((folder / f"{f.recording_id}.edf").read_bytes())
    with pytest.raises(DataError, match="appears twice"):
        find_files(tmp_path)
