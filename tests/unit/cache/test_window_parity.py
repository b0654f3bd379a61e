"""Training and inference see the same 50 s: a window cut from a long training recording and the same
50 s saved as a test EEG are cached and preprocessed (band-pass per window, in the model) identically."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hbac.cache import Cache
from hbac.cache.build import prepare
from hbac.config import DataConfig, EEGParams
from hbac.models.inputs import InputStage, WindowFilter
from hbac.signals.filters import bandpass, window_bandpass

EEG_ID, SPEC_ID = 2713014975, 780890284  # 112 s recording, 27 labelled windows in the real train.csv
BAND = [0.5, 20.0]


def two_folders(real_hms: Path, root: Path) -> tuple[Path, Path, float]:
    """A train folder with the whole recording, a test folder holding one of its 50 s windows as a test EEG."""
    train = pd.read_csv(real_hms / "train.csv")
    rows = train[train.eeg_id == EEG_ID]
    tr = root / "train"
    (tr / "train_eegs").mkdir(parents=True)
    (tr / "train_spectrograms").mkdir()
    rows.to_csv(tr / "train.csv", index=False)
    shutil.copy(real_hms / "train_eegs" / f"{EEG_ID}.parquet", tr / "train_eegs")
    shutil.copy(real_hms / "train_spectrograms" / f"{SPEC_ID}.parquet", tr / "train_spectrograms")
    offset = float(rows.eeg_label_offset_seconds.iloc[len(rows) // 2])  # a window in the middle of the recording
    te = root / "test"
    (te / "test_eegs").mkdir(parents=True)
    (te / "test_spectrograms").mkdir()
    full = pd.read_parquet(real_hms / "train_eegs" / f"{EEG_ID}.parquet")
    s = int(round(offset * 200))
    full.iloc[s : s + 10_000].to_parquet(te / "test_eegs" / f"{EEG_ID}.parquet", index=False)  # a Kaggle test EEG: exactly 50 s
    shutil.copy(real_hms / "train_spectrograms" / f"{SPEC_ID}.parquet", te / "test_spectrograms")
    pd.DataFrame({"spectrogram_id": [SPEC_ID], "eeg_id": [EEG_ID], "patient_id": [int(rows.patient_id.iloc[0])]}).to_csv(te / "test.csv", index=False)
    return tr, te, offset


def caches(tr: Path, te: Path, root: Path, filter_on: str) -> tuple[Cache, Cache]:
    eeg = EEGParams(bandpass=BAND, filter_on=filter_on)
    a = Cache(prepare(DataConfig(name=f"tr_{filter_on}", data_dir=str(tr), cache_root=str(root), eeg=eeg, workers=1), progress=False))
    b = Cache(prepare(DataConfig(name=f"te_{filter_on}", data_dir=str(te), split="test", cache_root=str(root), eeg=eeg, workers=1), progress=False))
    return a, b


def test_train_and_test_paths_give_the_same_window(real_hms: Path, tmp_path: Path) -> None:
    tr, te, offset = two_folders(real_hms, tmp_path)
    a, b = caches(tr, te, tmp_path / "cache", "window")
    i = int(np.flatnonzero(a.samples.start_s.to_numpy() == offset)[0])
    x_train, x_test = a.window(i), b.window(0)
    np.testing.assert_array_equal(x_train, x_test)  # cached unfiltered: montage, NaN fill and clip are per sample
    assert a.window_filter == b.window_filter == {"bandpass": BAND, "notch_hz": None}
    stage = InputStage(200.0, a.window_filter)
    y_train = stage({"eeg": torch.from_numpy(x_train)[None]})["eeg"]
    y_test = stage({"eeg": torch.from_numpy(x_test)[None]})["eeg"]
    assert torch.equal(y_train, y_test)
    assert float((y_train[0] - torch.from_numpy(x_train)).abs().max()) > 1.0  # and it did filter
    # the old recipe (filter each whole recording) gives the two paths different edges
    a_old, b_old = caches(tr, te, tmp_path / "cache", "recording")
    d = np.abs(a_old.window(i) - b_old.window(0))
    assert d[:, :400].max() > 0.05 * a_old.window(i).std()


def test_window_filter_matches_numpy_and_filtfilt_away_from_edges() -> None:
    rng = np.random.default_rng(0)
    x = (np.cumsum(rng.normal(0, 3, (3, 16, 10_000)), axis=-1) + rng.normal(0, 30, (3, 16, 10_000))).astype(np.float32)
    y_np = window_bandpass(x, 200.0, BAND)
    y_t = WindowFilter(200.0, BAND)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y_t, y_np, atol=2e-3 * float(y_np.std()))
    # same zero-phase response as the Butterworth filtfilt in the middle of the window
    ref = bandpass(x, 200.0, *BAND)
    mid = slice(2000, 8000)
    assert np.abs(y_np[..., mid] - ref[..., mid]).max() < 1e-3 * float(ref.std())


@pytest.mark.parametrize("freq,keep", [(5.0, True), (40.0, False), (0.1, False)])
def test_window_filter_passes_and_stops(freq: float, keep: bool) -> None:
    t = np.arange(10_000) / 200.0
    x = np.sin(2 * np.pi * freq * t).astype(np.float32)[None, None]
    y = WindowFilter(200.0, BAND)(torch.from_numpy(x)).numpy()[0, 0, 2000:8000]
    p = float(np.mean(y**2) / 0.5)
    assert (p > 0.9) if keep else (p < 0.01)
