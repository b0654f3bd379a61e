"""`hbac.cache.Cache` on a cache folder written by hand (independent of `prepare`)."""
from __future__ import annotations

import multiprocessing as mp
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbac.cache import open_cache
from hbac.cache.format import CACHE_FORMAT
from hbac.cache.reader import Cache, cache_status
from hbac.config import DataConfig, with_overrides
from hbac.errors import CacheError
from hbac.io import atomic_write_json

C = 3  # channels
FS = 10.0


def write_cache(path: Path, cfg: DataConfig | None = None) -> dict:
    """Two recordings (40 and 30 samples) whose values encode (time row, channel); two spectrograms."""
    path.mkdir(parents=True)
    total = 70
    eeg = (np.arange(total)[:, None] * 10 + np.arange(C)[None, :]).astype(np.float32)  # eeg[t, c] = 10 t + c
    np.save(path / "eeg.npy", eeg)
    spec = np.arange(350 * 400, dtype=np.float32).reshape(350, 400)
    np.save(path / "spec.npy", spec)
    pd.DataFrame({"recording_id": [7, 8], "eeg_start": [0, 40], "eeg_len": [40, 30]}).to_csv(path / "recordings.csv", index=False)
    pd.DataFrame({"spectrogram_id": [70, 80], "spec_start": [0, 320], "spec_len": [320, 30], "time0": [1.0, 1.0]}).to_csv(
        path / "specs.csv", index=False
    )
    samples = pd.DataFrame(
        {
            "sample_id": [100, 101, 102, 103],
            "recording_id": [7, 7, 8, 8],
            "group": [1, 1, 2, 2],
            "start_s": [0.0, 1.5, 0.5, 1.0],
            "duration_s": [2.0, 2.0, 2.0, 2.0],
            "spectrogram_id": [70, 70, 80, 80],
            "spec_offset_s": [0.0, 40.0, 0.0, 10.0],
            "a_vote": [1.0, 0.5, 0.0, 1.0],
            "b_vote": [0.0, 0.5, 1.0, 0.0],
            "n_votes": [1, 2, 1, 1],
            "eeg_row": [0, 15, 45, 50],
            "eeg_lo": [0, 0, 40, 40],
            "eeg_hi": [40, 40, 70, 70],
            "spec_row": [0, 20, 320, -1],
        }
    )
    samples.to_csv(path / "samples.csv", index=False)
    meta = {
        "format": CACHE_FORMAT, "dataset": "hms", "classes": ["a", "b"], "fs": FS, "channels": ["x", "y", "z"],
        "hash": cfg.hash() if cfg else "0", "params": {}, "n_samples": 4, "n_recordings": 2,
        "eeg_shape": [total, C], "created": "now", "skipped": {},
        "extras": {"kaggle_spec": {"stem": "spec", "id_column": "spectrogram_id", "shape": [350, 400], "window_rows": 300, "n_files": 2}},
    }
    atomic_write_json(path / "meta.json", meta)
    return {"eeg": eeg, "spec": spec, "samples": samples}


@pytest.fixture()
def made(tmp_path: Path) -> tuple[Cache, dict]:
    d = write_cache(tmp_path / "c")
    return Cache(tmp_path / "c"), d


def test_attributes(made: tuple[Cache, dict]) -> None:
    cache, d = made
    assert len(cache) == 4 and cache.fs == FS and cache.channels == ["x", "y", "z"] and cache.classes == ["a", "b"]
    assert isinstance(cache.eeg, np.memmap) and cache.eeg.shape == (70, C)
    assert cache.extra("kaggle_spec").shape == (350, 400) and list(cache.extras) == ["kaggle_spec"]
    assert list(cache.recordings.recording_id) == [7, 8] and list(cache.extra_index["kaggle_spec"].spectrogram_id) == [70, 80]
    pd.testing.assert_frame_equal(cache.samples, d["samples"])


def test_window_is_the_slice_transposed(made: tuple[Cache, dict]) -> None:
    cache, d = made
    for i in range(4):
        r = int(d["samples"].eeg_row[i])
        w = cache.window(i)
        assert w.shape == (C, 20) and w.dtype == np.float32 and w.flags.c_contiguous
        np.testing.assert_array_equal(w, d["eeg"][r : r + 20].T)
        assert w[1, 0] == 10 * r + 1  # channel 1 at the window's first row


def test_shift_is_clamped_to_the_recording(made: tuple[Cache, dict]) -> None:
    cache, d = made
    first = lambda w: int(w[0, 0]) // 10  # noqa: E731 - the eeg row a window starts at
    assert first(cache.window(1, shift=3)) == 18
    assert first(cache.window(1, shift=-7)) == 8
    assert first(cache.window(1, shift=-100)) == 0  # recording 7 starts at row 0
    assert first(cache.window(1, shift=100)) == 20  # ... and ends at 40: last full window starts at 20
    assert first(cache.window(2, shift=-100)) == 40  # recording 8 never borrows from recording 7
    assert first(cache.window(2, shift=100)) == 50
    for i in range(4):
        for s in (-1000, -3, 0, 3, 1000):
            w = cache.window(i, shift=s)
            lo, hi = d["samples"].eeg_lo[i], d["samples"].eeg_hi[i]
            assert w.shape == (C, 20) and lo <= first(w) and first(w) + 20 <= hi


def test_extra_window_pads_with_nan_and_none_without_a_row(made: tuple[Cache, dict]) -> None:
    cache, d = made
    w = cache.extra_window("kaggle_spec", 0)
    assert w.shape == (300, 400) and w.dtype == np.float32
    np.testing.assert_array_equal(w, d["spec"][:300])
    w = cache.extra_window("kaggle_spec", 1)  # rows 20 … 319 of a 320-row spectrogram: 300 rows, no padding
    np.testing.assert_array_equal(w, d["spec"][20:320])
    w = cache.extra_window("kaggle_spec", 2)  # a 30-row spectrogram: 30 rows then NaN, never rows of the next file
    np.testing.assert_array_equal(w[:30], d["spec"][320:350])
    assert np.isnan(w[30:]).all()
    assert cache.extra_window("kaggle_spec", 3) is None  # spec_row -1


def test_missing_meta_is_an_incomplete_cache(tmp_path: Path) -> None:
    write_cache(tmp_path / "c")
    (tmp_path / "c" / "meta.json").unlink()
    with pytest.raises(CacheError, match=r"incomplete.*prepare"):
        Cache(tmp_path / "c")
    with pytest.raises(CacheError, match="no cache"):
        Cache(tmp_path / "absent")


def test_wrong_shape_is_detected(tmp_path: Path) -> None:
    write_cache(tmp_path / "c")
    np.save(tmp_path / "c" / "eeg.npy", np.zeros((5, C), np.float32))
    with pytest.raises(CacheError, match="shape"):
        Cache(tmp_path / "c").window(0)


def test_pickle_carries_no_arrays(made: tuple[Cache, dict]) -> None:
    cache, d = made
    cache.window(0), cache.extra_window("kaggle_spec", 0)  # maps opened
    blob = pickle.dumps(cache)
    assert len(blob) < d["spec"].nbytes / 10  # the 560 kB spectrogram array is not inside
    clone = pickle.loads(blob)
    assert clone._maps == {}
    np.testing.assert_array_equal(clone.window(3, shift=2), cache.window(3, shift=2))
    np.testing.assert_array_equal(clone.extra_window("kaggle_spec", 1), cache.extra_window("kaggle_spec", 1))


def test_a_spawned_process_reopens_the_maps(made: tuple[Cache, dict]) -> None:
    cache, _ = made
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        w = ex.submit(cache.window, 2, 1).result()
    np.testing.assert_array_equal(w, cache.window(2, 1))


def test_open_cache_by_hash(tmp_path: Path) -> None:
    cfg = DataConfig(name="c", data_dir=str(tmp_path / "nowhere"), cache_root=str(tmp_path))
    with pytest.raises(CacheError, match=r"does not exist.*python -m hbac prepare"):
        open_cache(cfg, build=False)
    write_cache(tmp_path / "c", cfg)
    assert cache_status(cfg) == "ok"
    assert len(open_cache(cfg, build=False)) == 4  # matching hash: no build attempted (there is no data)
    cfg = with_overrides(cfg, {"eeg": {"bandpass": [1.0, 10.0]}})
    assert cache_status(cfg) == "stale"
    with pytest.raises(CacheError, match="other parameters"):
        open_cache(cfg, build=False)
