"""WindowDataset windows against the raw cache array (and time-shift clamping at recording edges), mixup, the balanced sampler.

The hand-written cache's EEG values encode their time row (eeg[t, c] = 10 t + c), so each assertion
reads off which samples an item holds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hbac.cache.format import CACHE_FORMAT
from hbac.cache.reader import Cache
from hbac.config import AugmentConfig
from hbac.data.augment import mixup
from hbac.data.dataset import WindowDataset
from hbac.data.samplers import balanced_sampler
from hbac.io import atomic_write_json

FS = 10.0  # Hz
C = 3  # channels
N = 40  # samples per window (4 s)
# recording 7: rows 0-199; recording 8: rows 200-299. Windows at the start, middle and end of 7, and in 8.
EEG_ROW = [0, 80, 160, 230]
LO, HI = [0, 0, 0, 200], [200, 200, 200, 300]


@pytest.fixture()
def cache(tmp_path: Path) -> Cache:
    total = 300
    np.save(tmp_path / "eeg.npy", (np.arange(total)[:, None] * 10 + np.arange(C)[None, :]).astype(np.float32))
    pd.DataFrame({"recording_id": [7, 8], "eeg_start": [0, 200], "eeg_len": [200, 100]}).to_csv(tmp_path / "recordings.csv", index=False)
    pd.DataFrame({
        "sample_id": [1, 2, 3, 4], "recording_id": [7, 7, 7, 8], "group": [1, 1, 1, 2],
        "start_s": [r / FS for r in EEG_ROW[:3]] + [3.0], "duration_s": [N / FS] * 4,
        "a_vote": [1.0, 0.2, 0.0, 0.0], "b_vote": [0.0, 0.8, 1.0, 1.0], "n_votes": [3, 5, 3, 12],
        "eeg_row": EEG_ROW, "eeg_lo": LO, "eeg_hi": HI,
    }).to_csv(tmp_path / "samples.csv", index=False)
    atomic_write_json(tmp_path / "meta.json", {
        "format": CACHE_FORMAT, "dataset": "hms", "classes": ["a", "b"], "fs": FS, "channels": ["x", "y", "z"], "hash": "0",
        "params": {}, "n_samples": 4, "n_recordings": 2, "eeg_shape": [total, C], "extras": {}, "created": "now", "skipped": {},
    })
    return Cache(tmp_path)


def first_row(item: dict) -> int:
    return int(round(float(item["eeg"][0, 0]) / 10))


def test_window_is_the_raw_cache_slice(cache: Cache, tmp_path: Path) -> None:
    """Each item's EEG is rows [eeg_row, eeg_row + N) of eeg.npy, transposed to (C, N); target and weight are the row's."""
    raw = np.load(tmp_path / "eeg.npy")
    ds = WindowDataset(cache, cache.samples, weights=np.array([1.0, 2.0, 3.0, 4.0]))
    for i, row in enumerate(EEG_ROW):
        item = ds[i]
        assert item["eeg"].shape == (C, N) and item["eeg"].dtype == torch.float32
        np.testing.assert_array_equal(item["eeg"].numpy(), raw[row : row + N].T)
        np.testing.assert_allclose(item["target"].numpy(), cache.samples[["a_vote", "b_vote"]].to_numpy()[i])
        assert float(item["weight"]) == i + 1 and int(item["index"]) == i


def test_time_shift_stays_inside_the_recording(cache: Cache) -> None:
    """Random shifts of ±10 s (100 rows) are clamped to the window's own recording: never before its first row,
    never past its last, never into the next recording; both clamps are reached."""
    np.random.seed(0)
    ds = WindowDataset(cache, cache.samples, augment=AugmentConfig(time_shift_s=10.0))
    for i, row in enumerate(EEG_ROW):
        starts = np.array([first_row(ds[i]) for _ in range(200)])
        lo, hi = LO[i], HI[i] - N
        assert starts.min() >= lo and starts.max() <= hi, (i, starts.min(), starts.max())
        assert len(np.unique(starts)) > 10  # it does move
        if row - 100 < lo:
            assert (starts == lo).any()  # clamped at the recording's start
        if row + 100 > hi:
            assert (starts == hi).any()  # clamped at its end
        # every item is a contiguous run of rows of one recording
        item = ds[i]
        np.testing.assert_array_equal(np.diff(item["eeg"][0].numpy()), np.full(N - 1, 10.0))


def test_no_shift_without_augmentation(cache: Cache) -> None:
    np.random.seed(1)
    ds = WindowDataset(cache, cache.samples, augment=AugmentConfig(time_shift_s=0.0))
    assert [first_row(ds[i]) for i in range(4)] == EEG_ROW


# --------------------------------------------------------------------------- mixup
def coded_batch(b: int = 8) -> dict[str, torch.Tensor]:
    """Sample j: one-hot target of class j, eeg and a 'spec' input filled with j, weight j + 1."""
    j = torch.arange(b, dtype=torch.float32)
    return {
        "eeg": j[:, None, None].expand(b, 2, 5).clone(),
        "spec": j[:, None, None, None].expand(b, 1, 3, 4).clone(),
        "target": torch.eye(b),
        "weight": j + 1,
        "index": torch.arange(b),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixup_is_one_convex_combination(seed: int) -> None:
    """Inputs, targets and weights are mixed with the same λ and the same partner; targets stay distributions."""
    np.random.seed(seed)
    batch = coded_batch()
    out = mixup(batch, alpha=0.4, generator=torch.Generator().manual_seed(seed))
    for k in batch:
        assert out[k].shape == batch[k].shape and out[k].dtype == batch[k].dtype
    t = out["target"]
    assert (t >= 0).all()
    torch.testing.assert_close(t.sum(dim=1), torch.ones(8))
    classes = torch.arange(8, dtype=torch.float32)
    expected_value = t @ classes  # λ·j + (1-λ)·perm[j]: the same mix as the targets
    torch.testing.assert_close(out["eeg"][:, 0, 0], expected_value)
    torch.testing.assert_close(out["spec"][:, 0, 0, 0], expected_value)
    torch.testing.assert_close(out["weight"], t @ (classes + 1))
    # one λ for the whole batch: every row's coefficient on its own class is λ (or 1 when mixed with itself)
    own = t.diagonal()
    lam = own[own < 1 - 1e-6]
    if len(lam):
        torch.testing.assert_close(lam, lam[:1].expand_as(lam))
        assert 0 < float(lam[0]) < 1
    assert torch.equal(out["index"], batch["index"])  # integer bookkeeping is not mixed


def test_mixup_leaves_the_batch_unchanged() -> None:
    batch = coded_batch()
    before = {k: v.clone() for k, v in batch.items()}
    np.random.seed(3)
    mixup(batch, alpha=1.0, generator=torch.Generator().manual_seed(3))
    for k in batch:
        assert torch.equal(batch[k], before[k])


# --------------------------------------------------------------------------- balanced sampler
def test_balanced_sampler_draws_classes_equally() -> None:
    """A 90/9/1 table (by argmax of the soft target) is drawn about 1/3 per class over many draws."""
    counts = {"a": 900, "b": 90, "c": 10}
    rows = []
    for cls, n in counts.items():
        t = {"a_vote": 0.1, "b_vote": 0.1, "c_vote": 0.1}
        t[f"{cls}_vote"] = 0.8
        rows += [t] * n
    table = pd.DataFrame(rows)
    s = balanced_sampler(table, torch.Generator().manual_seed(0))
    assert len(s) == len(table)
    y = table.to_numpy().argmax(axis=1)
    drawn = np.concatenate([y[np.fromiter(iter(s), dtype=np.int64)] for _ in range(20)])  # 20 epochs, 20 000 draws
    freq = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.02)
    # without the sampler the rare class would be 1 % of the draws
    assert freq[2] > 0.3


def test_balanced_sampler_is_seeded() -> None:
    table = pd.DataFrame({"a_vote": [1.0] * 50 + [0.0] * 5, "b_vote": [0.0] * 50 + [1.0] * 5})
    a = list(balanced_sampler(table, torch.Generator().manual_seed(7)))
    b = list(balanced_sampler(table, torch.Generator().manual_seed(7)))
    c = list(balanced_sampler(table, torch.Generator().manual_seed(8)))
    assert a == b and a != c
