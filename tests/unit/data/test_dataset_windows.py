"""WindowDataset windows: centred crops, TTA views, random per-EEG sub-windows, albumentations.

On a cache written by hand whose EEG values encode their time row (eeg[t, c] = 10 t + c), so
every assertion reads off which samples an item holds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbac.cache.format import CACHE_FORMAT
from hbac.cache.reader import Cache
from hbac.config import AugmentConfig, TransformSpec
from hbac.data.dataset import WindowDataset
from hbac.data.selection import select_samples
from hbac.errors import ConfigError
from hbac.io import atomic_write_json

FS = 10.0
C = 2


@pytest.fixture()
def cache(tmp_path: Path) -> Cache:
    """Recording 7 (rows 0-199, labelled 4 s windows at rows 20, 60, 100), recording 8 (rows 200-299, one at 240)."""
    total = 300
    np.save(tmp_path / "eeg.npy", (np.arange(total)[:, None] * 10 + np.arange(C)[None, :]).astype(np.float32))
    np.save(tmp_path / "spec.npy", np.exp(np.random.default_rng(0).normal(size=(700, 400))).astype(np.float32))
    pd.DataFrame({"recording_id": [7, 8], "eeg_start": [0, 200], "eeg_len": [200, 100]}).to_csv(tmp_path / "recordings.csv", index=False)
    pd.DataFrame({"spectrogram_id": [70, 80], "spec_start": [0, 350], "spec_len": [350, 350], "time0": [1.0, 1.0]}).to_csv(tmp_path / "specs.csv", index=False)
    pd.DataFrame({
        "sample_id": [1, 2, 3, 4], "recording_id": [7, 7, 7, 8], "group": [1, 1, 1, 2],
        "start_s": [2.0, 6.0, 10.0, 4.0], "duration_s": [4.0] * 4, "spectrogram_id": [70, 70, 70, 80],
        "a_vote": [1.0, 1.0, 0.0, 0.0], "b_vote": [0.0, 0.0, 1.0, 1.0], "n_votes": [3, 3, 3, 12],
        "eeg_row": [20, 60, 100, 240], "eeg_lo": [0, 0, 0, 200], "eeg_hi": [200, 200, 200, 300], "spec_row": [0, 10, 20, 350],
    }).to_csv(tmp_path / "samples.csv", index=False)
    atomic_write_json(tmp_path / "meta.json", {
        "format": CACHE_FORMAT, "dataset": "hms", "classes": ["a", "b"], "fs": FS, "channels": ["x", "y"], "hash": "0",
        "params": {}, "n_samples": 4, "n_recordings": 2, "eeg_shape": [total, C],
        "extras": {"kaggle_spec": {"stem": "spec", "id_column": "spectrogram_id", "shape": [700, 400], "window_rows": 300, "n_files": 2}},
        "created": "now", "skipped": {},
    })
    return Cache(tmp_path)


def first_row(item) -> int:
    """Time row of an item's first EEG sample (channel 0 holds 10 · row)."""
    return int(round(float(item["eeg"][0, 0]) / 10))


def test_centre_crop_and_tta_view(cache: Cache) -> None:
    ds = WindowDataset(cache, cache.samples, window_s=2.0)
    item = ds[1]
    assert item["eeg"].shape == (C, 20)
    assert first_row(item) == 60 + 10  # the middle 2 s of the 4 s window starting at row 60
    ds.set_view(-0.5)
    assert first_row(ds[1]) == 65
    ds.set_view(0.0)
    full = WindowDataset(cache, cache.samples)
    assert full[1]["eeg"].shape == (C, 40) and first_row(full[1]) == 60
    # shifts are clamped to the recording: never read across into the next one
    ds.set_view(50.0)
    assert first_row(ds[0]) == 200 - 20


def test_per_eeg_random_sub_window_each_epoch(cache: Cache) -> None:
    table = select_samples(cache.samples, "per_eeg")  # one row per recording, at its middle sub-window
    middle = WindowDataset(cache, table)
    rnd = WindowDataset(cache, table, sub_windows=True)
    i7 = int(np.flatnonzero(table.recording_id.to_numpy() == 7)[0])
    i8 = int(np.flatnonzero(table.recording_id.to_numpy() == 8)[0])
    assert first_row(middle[i7]) == 60
    seen = set()
    for epoch in range(12):
        rnd.set_epoch(1000 + epoch)
        a = first_row(rnd[i7])
        rnd.set_epoch(1000 + epoch)
        assert first_row(rnd[i7]) == a  # deterministic per epoch seed (exact resume)
        seen.add(a)
        assert first_row(rnd[i8]) == 240  # a single sub-window: always it
    assert seen == {20, 60, 100}  # every labelled sub-window comes up, not only the middle one
    np.testing.assert_array_equal(rnd[i7]["target"].numpy(), middle[i7]["target"].numpy())  # the EEG's aggregated target


def test_stage2_draws_only_high_vote_sub_windows(cache: Cache) -> None:
    """Stage 2 (n_votes >= 10) must not read a recording's low-vote windows: recording 8's single window has 12."""
    samples = cache.samples.copy()
    table = select_samples(samples, "per_eeg")
    i7 = int(np.flatnonzero(table.recording_id.to_numpy() == 7)[0])
    cache.samples.loc[cache.samples.sample_id == 3, "n_votes"] = 15  # recording 7: only the window at row 100 is high-vote
    ds = WindowDataset(cache, table, sub_windows=True, sub_min_votes=10)
    for epoch in range(8):
        ds.set_epoch(epoch)
        assert first_row(ds[i7]) == 100


def test_albumentations_on_kaggle_spec(cache: Cache) -> None:
    aug = AugmentConfig(albumentations=[
        TransformSpec("XYMasking", {"num_masks_x": 2, "mask_x_length": 30, "num_masks_y": 1, "mask_y_length": 10, "fill": 0.0, "p": 1.0}),
    ])
    plain = WindowDataset(cache, cache.samples, extras=["kaggle_spec"])
    ds = WindowDataset(cache, cache.samples, extras=["kaggle_spec"], augment=aug)
    np.random.seed(0)
    a = ds[0]["kaggle_spec"].numpy()
    np.random.seed(0)
    b = ds[0]["kaggle_spec"].numpy()
    ref = plain[0]["kaggle_spec"].numpy()
    np.testing.assert_array_equal(a, b)  # reproducible from numpy's (per-epoch) state
    changed = a != ref
    assert changed.any() and (a[changed] == 0).all()
    # the same masks on every region (one HWC image): a masked time column is masked in all 4
    cols = (a == 0).all(axis=1)  # (4, 300)
    assert cols.any() and (cols == cols[0]).all()
    np.random.seed(1)
    assert not np.array_equal(ds[0]["kaggle_spec"].numpy(), a)


def test_albumentations_errors(cache: Cache) -> None:
    with pytest.raises(ConfigError, match=r"augment.albumentations\[0\].name"):
        WindowDataset(cache, cache.samples, extras=["kaggle_spec"], augment=AugmentConfig(albumentations=[TransformSpec("NoSuchMask")]))
    aug = AugmentConfig(albumentations=[TransformSpec("CoarseDropout", {"p": 1.0})])
    with pytest.raises(ValueError, match="kaggle_spec"):
        WindowDataset(cache, cache.samples, extras=[], augment=aug)
