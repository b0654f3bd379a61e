"""Torch datasets over a cache, training-row selection, augmentations, samplers.

Datasets read caches only (memory-mapped arrays); `__getitem__` never opens a raw file.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from hbac.config import AugmentConfig
from hbac.constants import SPEC_REGIONS
from hbac.signals import flip_permutation, kaggle_spec_image

SPEC_STEPS = 300  # 10-minute Kaggle spectrogram window in 2 s steps


def vote_columns(table: pd.DataFrame) -> list[str]:
    """The `<class>_vote` target columns of a table, in table order."""
    cols = [c for c in table.columns if c.endswith("_vote")]
    if not cols:
        raise KeyError("table has no '<class>_vote' target columns")
    return cols


def select_samples(table: pd.DataFrame, strategy: str = "all", min_votes: int = 10) -> pd.DataFrame:
    """Training-row selection over any sample table.

    `all`: every row; `min_votes`: rows with n_votes ≥ min_votes; `per_eeg`: one row per
    recording, its votes summed over all its sub-windows (as the top HMS solutions did),
    placed at the recording's middle sub-window (by start time); `sample_id` becomes the
    recording id.
    """
    if strategy == "all":
        return table.reset_index(drop=True)
    if strategy == "min_votes":
        return table[table.n_votes >= min_votes].reset_index(drop=True)
    if strategy != "per_eeg":
        raise ValueError(f"unknown selection strategy {strategy!r} (all, per_eeg, min_votes)")
    vcols = vote_columns(table)
    t = table.reset_index(drop=True)
    counts = t[vcols].to_numpy(dtype=np.float64) * t["n_votes"].to_numpy(dtype=np.float64)[:, None]
    codes, uniq = pd.factorize(t["recording_id"], sort=False)
    sums = np.zeros((len(uniq), len(vcols)))
    np.add.at(sums, codes, counts)
    # middle sub-window of each recording, by start time
    order = np.lexsort((t["start_s"].to_numpy(), codes))
    sizes = np.bincount(codes, minlength=len(uniq))
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    mid_rows = order[first + sizes // 2]
    rep = t.iloc[mid_rows].copy()
    tot = sums.sum(axis=1)
    rep[vcols] = sums / np.where(tot > 0, tot, 1)[:, None]
    rep["n_votes"] = tot.round().astype(np.int64)
    rep["sample_id"] = rep["recording_id"]
    return rep.reset_index(drop=True)


class WindowDataset(Dataset):
    """Windows of a cache, one per row of `table` (a subset of the cache's samples table).

    Item: dict with `eeg` (C, T) float32, optionally `kaggle_spec` (4, 100, 300) float32,
    `target` (K,) float32 soft labels, `weight` () float32, `index` () int64 (row in `table`).
    """

    def __init__(
        self,
        cache: Any,
        table: pd.DataFrame,
        use_kaggle_spec: bool = False,
        augment: Optional[AugmentConfig] = None,
        weights: Optional[np.ndarray] = None,
    ) -> None:
        self.cache = cache
        self.table = table.reset_index(drop=True)
        self.vcols = vote_columns(self.table)
        self.targets = self.table[self.vcols].to_numpy(dtype=np.float32)
        self.weights = np.ones(len(self.table), np.float32) if weights is None else weights.astype(np.float32)
        self.fs = float(cache.fs)
        self.n_times = np.round(self.table["duration_s"].to_numpy() * self.fs).astype(np.int64)
        self.eeg_row = self.table["eeg_row"].to_numpy(np.int64)
        self.eeg_lo = self.table["eeg_lo"].to_numpy(np.int64)
        self.eeg_hi = self.table["eeg_hi"].to_numpy(np.int64)
        self.use_kaggle_spec = use_kaggle_spec
        if use_kaggle_spec:
            if "spec_row" not in self.table or cache.spec is None:
                raise KeyError("model input 'kaggle_spec' needs a cache built with kaggle_spec: true (HMS)")
            self.spec_row = self.table["spec_row"].to_numpy(np.int64)
            # end of each row's spectrogram in the flat array: a window must not run into the next one
            specs = cache.specs
            ends = pd.Series((specs["spec_start"] + specs["spec_len"]).to_numpy(), index=specs["spectrogram_id"].to_numpy())
            self.spec_end = ends.reindex(self.table["spectrogram_id"].to_numpy()).fillna(-1).to_numpy(np.int64)
        self.augment = augment
        self.eeg_perm = flip_permutation(list(cache.channels))
        self.spec_perm = flip_permutation(SPEC_REGIONS)

    def __len__(self) -> int:
        return len(self.table)

    def _eeg(self, i: int, shift: int) -> np.ndarray:
        n = int(self.n_times[i])
        start = int(np.clip(self.eeg_row[i] + shift, self.eeg_lo[i], max(self.eeg_lo[i], self.eeg_hi[i] - n)))
        w = np.asarray(self.cache.eeg[start : start + n], dtype=np.float32)
        if len(w) < n:  # recording shorter than the window: pad with zeros
            w = np.concatenate([w, np.zeros((n - len(w), w.shape[1]), np.float32)])
        return np.ascontiguousarray(w.T)

    def _spec(self, i: int) -> np.ndarray:
        r = int(self.spec_row[i])
        raw = np.full((SPEC_STEPS, 400), np.nan, np.float32)
        if r >= 0:
            end = min(r + SPEC_STEPS, int(self.spec_end[i]))
            chunk = np.asarray(self.cache.spec[r:end], dtype=np.float32)
            raw[: len(chunk)] = chunk
        return kaggle_spec_image(raw)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        aug = self.augment
        shift = 0
        if aug is not None and aug.time_shift_s > 0:
            m = int(aug.time_shift_s * self.fs)
            shift = int(np.random.randint(-m, m + 1))
        item: dict[str, Any] = {"eeg": self._eeg(i, shift)}
        if self.use_kaggle_spec:
            spec = self._spec(i)
            if aug is not None:
                spec = _mask_spec(spec, aug)
            item["kaggle_spec"] = spec
        if aug is not None and aug.hemisphere_flip > 0 and np.random.rand() < aug.hemisphere_flip:
            item["eeg"] = item["eeg"][self.eeg_perm]
            if "kaggle_spec" in item:
                item["kaggle_spec"] = item["kaggle_spec"][self.spec_perm]
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in item.items()}
        out["target"] = torch.tensor(self.targets[i])
        out["weight"] = torch.tensor(self.weights[i])
        out["index"] = torch.tensor(i, dtype=torch.int64)
        return out


def _mask_spec(spec: np.ndarray, aug: AugmentConfig) -> np.ndarray:
    """SpecAugment-style masks on a (R, F, T) image: one time and one frequency band set to 0."""
    spec = spec.copy()
    _, f, t = spec.shape
    if aug.time_mask > 0 and np.random.rand() < aug.time_mask:
        w = np.random.randint(1, max(2, t // 8))
        s = np.random.randint(0, t - w)
        spec[:, :, s : s + w] = 0.0
    if aug.freq_mask > 0 and np.random.rand() < aug.freq_mask:
        w = np.random.randint(1, max(2, f // 8))
        s = np.random.randint(0, f - w)
        spec[:, s : s + w, :] = 0.0
    return spec


def mixup(batch: dict[str, torch.Tensor], alpha: float, generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """Mix every tensor input and the soft targets of a batch with a shuffled copy of itself."""
    lam = float(np.random.beta(alpha, alpha))
    perm = torch.randperm(batch["target"].shape[0], generator=generator)
    out = dict(batch)
    for k in ("eeg", "kaggle_spec", "target"):
        if k in batch:
            out[k] = lam * batch[k] + (1 - lam) * batch[k][perm]
    out["weight"] = lam * batch["weight"] + (1 - lam) * batch["weight"][perm]
    return out


def balanced_sampler(table: pd.DataFrame, generator: torch.Generator) -> WeightedRandomSampler:
    """Sampler drawing every class (argmax of the soft target) equally often."""
    y = table[vote_columns(table)].to_numpy().argmax(axis=1)
    counts = np.bincount(y, minlength=y.max() + 1).astype(np.float64)
    w = 1.0 / counts[y]
    return WeightedRandomSampler(torch.as_tensor(w, dtype=torch.double), num_samples=len(y), replacement=True, generator=generator)


def worker_init(worker_id: int) -> None:
    """Seed numpy in DataLoader workers from torch's per-worker seed (augmentations use numpy)."""
    np.random.seed(torch.initial_seed() % 2**32)
