"""The torch Dataset over a cache: one item per sample-table row.

Datasets read caches only (memory-mapped arrays); `__getitem__` never opens a raw file.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from hbac.cache.format import SPEC_STEPS
from hbac.config import AugmentConfig
from hbac.data.selection import vote_columns
from hbac.datasets.kaggle_spec import kaggle_spec_regions
from hbac.signals.montage import SPEC_REGIONS, flip_permutation


class WindowDataset(Dataset):
    """Windows of a cache, one per row of `table` (a subset of the cache's samples table).

    Item: dict with `eeg` (C, T) float32 µV as cached, optionally `kaggle_spec` (4, 100, 300) float32
    raw power (NaN past its file's end; models normalise both on their device, `hbac.models.inputs`),
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
        return kaggle_spec_regions(raw)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        aug = self.augment
        shift = 0
        if aug is not None and aug.time_shift_s > 0:
            m = int(aug.time_shift_s * self.fs)
            shift = int(np.random.randint(-m, m + 1))
        item: dict[str, Any] = {"eeg": self._eeg(i, shift)}
        if self.use_kaggle_spec:
            item["kaggle_spec"] = self._spec(i)  # time/frequency masks: in the model, after normalising
        if aug is not None and aug.hemisphere_flip > 0 and np.random.rand() < aug.hemisphere_flip:
            item["eeg"] = item["eeg"][self.eeg_perm]
            if "kaggle_spec" in item:
                item["kaggle_spec"] = item["kaggle_spec"][self.spec_perm]
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in item.items()}
        out["target"] = torch.tensor(self.targets[i])
        out["weight"] = torch.tensor(self.weights[i])
        out["index"] = torch.tensor(i, dtype=torch.int64)
        return out
