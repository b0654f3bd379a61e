"""The torch Dataset over a cache: one item per sample-table row.

Datasets read caches only (memory-mapped arrays); `__getitem__` never opens a raw file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from hbac.cache.reader import eeg_slice, extra_slice
from hbac.config import AugmentConfig
from hbac.data.augment import mask_spec
from hbac.data.selection import vote_columns
from hbac.datasets import ExtraInput, get_adapter, load_plugins
from hbac.signals.montage import flip_permutation


def extra_keys(input_keys: Sequence[str]) -> list[str]:
    """The extra inputs a model reads: its batch keys other than `eeg` (e.g. `kaggle_spec`)."""
    return [k for k in input_keys if k != "eeg"]


def _declared(meta: dict[str, Any], name: str) -> Optional[ExtraInput]:
    """The declaration of extra input `name` by the adapter that built a cache (plugins imported first)."""
    load_plugins((meta.get("config") or {}).get("plugins"))
    return {e.name: e for e in get_adapter(meta["dataset"]).extra_inputs}.get(name)


class WindowDataset(Dataset):
    """Windows of a cache, one per row of `table` (a subset of the cache's samples table).

    Item: dict with `eeg` (C, T) float32, one array per name in `extras` (the dataset's
    declared model array, e.g. `kaggle_spec` (4, 100, 300) float32), `target` (K,) float32
    soft labels, `weight` () float32, `index` () int64 (row in `table`).
    """

    def __init__(
        self,
        cache: Any,
        table: pd.DataFrame,
        extras: Sequence[str] = (),
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
        self.extras = {name: self._extra(name) for name in extras}
        self.augment = augment
        self.eeg_perm = flip_permutation(list(cache.channels))

    def _extra(self, name: str) -> _Extra:
        """Where the rows of extra input `name` live and how they become the model's array."""
        held = getattr(self.cache, "extras", None) or {}
        if name not in held:
            raise KeyError(f"model input {name!r} needs a cache that holds it; {self.cache.path} holds {sorted(held) or 'no extra inputs'}")
        decl = _declared(self.cache.meta, name)
        row, hi = self.cache.extra_bounds(name, self.table)
        return _Extra(row, hi, int(held[name]["window_rows"]), decl.to_input if decl else None,
                      np.asarray(decl.flip) if decl and decl.flip is not None else None, bool(decl and decl.masks))

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        aug = self.augment
        shift = 0
        if aug is not None and aug.time_shift_s > 0:
            m = int(aug.time_shift_s * self.fs)
            shift = int(np.random.randint(-m, m + 1))
        item: dict[str, Any] = {"eeg": eeg_slice(self.cache.eeg, self.eeg_row[i], self.eeg_lo[i], self.eeg_hi[i], int(self.n_times[i]), shift)}
        for name, x in self.extras.items():
            raw = extra_slice(self.cache.extra(name), int(x.row[i]), int(x.hi[i]), x.window_rows)
            arr = x.to_input(raw) if x.to_input is not None else raw
            if aug is not None and x.masks:
                arr = mask_spec(arr, aug)
            item[name] = arr
        if aug is not None and aug.hemisphere_flip > 0 and np.random.rand() < aug.hemisphere_flip:
            item["eeg"] = item["eeg"][self.eeg_perm]
            for name, x in self.extras.items():
                if x.flip is not None:
                    item[name] = item[name][x.flip]
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in item.items()}
        out["target"] = torch.tensor(self.targets[i])
        out["weight"] = torch.tensor(self.weights[i])
        out["index"] = torch.tensor(i, dtype=torch.int64)
        return out


@dataclass
class _Extra:
    """One extra input of a WindowDataset: per-row window start / file end, and its model-array transform."""

    row: np.ndarray  # (n,) first cached row of each window, -1: none
    hi: np.ndarray  # (n,) end row of each window's file
    window_rows: int
    to_input: Optional[Callable[[np.ndarray], np.ndarray]]  # picklable (module-level) for DataLoader workers
    flip: Optional[np.ndarray]  # hemisphere flip permutation of the model array's axis 0
    masks: bool  # time/frequency masks apply (a (C, F, T) spectrogram image)
