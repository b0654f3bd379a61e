"""The torch Dataset over a cache: one item per sample-table row.

Datasets read caches only (memory-mapped arrays); `__getitem__` never opens a raw file.
Windows are cut by the cache's slicers (`hbac.cache.reader.eeg_slice` / `extra_slice`).

Which samples of the cached window an item holds:

* `window_s` crops the model's EEG window to that many seconds centred on the row's window
  (HMS: the labelled 10 s sit in the middle of the 50 s), instead of the whole cached window;
* `set_view(shift_s)` shifts that crop (test-time augmentation over offsets, `tta.offsets_s`);
* `augment.time_shift_s` shifts it at random (training);
* `sub_windows=True` (the `per_eeg` selection with `per_eeg_window: random`) reads, for each row,
  one of its recording's labelled sub-windows, drawn again each epoch from `set_epoch(seed)` and
  the row index — deterministic, so a resumed run reads the same windows. The target stays the
  row's (the recording's aggregated votes).

Extra inputs (e.g. the HMS `kaggle_spec`) are whatever the dataset's adapter declares
(`hbac.datasets.ExtraInput`): their raw window from the cache, turned into the model's array by
the declaration's `to_input`, masked / flipped as it says (`flip_perms`: the permutations the
batched TTA flip uses too, `hbac.data.augment.hemisphere_flip`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from hbac.cache.reader import eeg_slice, extra_slice
from hbac.config import AugmentConfig, ExperimentConfig
from hbac.data.albument import apply_albumentations, build_albumentations
from hbac.data.augment import flip_perms, hemisphere_flip, mask_spec
from hbac.data.selection import vote_columns
from hbac.datasets import ExtraInput, adapter_for, get_adapter, load_plugins


@dataclass
class _Extra:
    """One extra input of a WindowDataset: per-row window start / file end, and its model-array transform."""

    row: np.ndarray  # (n,) first cached row of each window, -1: none
    hi: np.ndarray  # (n,) end row of each window's file
    window_rows: int
    to_input: Optional[Callable[[np.ndarray], np.ndarray]]  # picklable (module-level) for DataLoader workers
    masks: bool  # a (C, F, T) spectrogram image: time/frequency masks and albumentations apply


def _declared(meta: dict[str, Any], name: str) -> Optional[ExtraInput]:
    """The declaration of extra input `name` by the adapter that built a cache (plugins imported first)."""
    load_plugins((meta.get("config") or {}).get("plugins"))
    return {e.name: e for e in get_adapter(meta["dataset"]).extra_inputs}.get(name)


def cache_flip_perms(cache: Any, extras: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Hemisphere-flip permutations of the model inputs read from `cache`: its EEG channels and the named
    extra inputs, as the cache's adapter declares them (`hbac.data.augment.flip_perms`)."""
    decls = [d for d in (_declared(cache.meta, name) for name in extras) if d is not None]
    return flip_perms(cache.channels, decls)


class WindowDataset(Dataset):
    """Windows of a cache, one per row of `table` (a subset of the cache's samples table).

    Item: dict with `eeg` (C, T) float32, one array per name in `extras` (the declared model
    array, e.g. `kaggle_spec` (4, 100, 300) float32), `target` (K,) float32 soft labels,
    `weight` () float32, `index` () int64 (row in `table`).
    """

    def __init__(
        self,
        cache: Any,
        table: pd.DataFrame,
        extras: Sequence[str] = (),
        augment: Optional[AugmentConfig] = None,
        weights: Optional[np.ndarray] = None,
        window_s: Optional[float] = None,
        sub_windows: bool = False,
        sub_min_votes: Optional[int] = None,
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
        self.extras = {name: self._extra(name, self.table) for name in extras}
        self.augment = augment
        self.albu = build_albumentations(augment.albumentations) if augment is not None else None
        if self.albu is not None and not any(x.masks for x in self.extras.values()):
            raise ValueError(
                "augment.albumentations: acts on a spectrogram image the dataset provides (e.g. kaggle_spec), which this "
                "model does not read (model.inputs); mask in-model spectrograms with augment.time_mask / freq_mask"
            )
        self.flip_perms = cache_flip_perms(cache, list(self.extras))  # {input: permutation of its channel axis}
        # the model's window: `window_s` centred in the cached one
        full = self.n_times
        if window_s is not None:
            self.n_times = np.minimum(full, int(round(window_s * self.fs)))
        self.crop_offset = (full - self.n_times) // 2
        self.view_shift = 0
        self.epoch_seed = 0
        self.sub: Optional[list[np.ndarray]] = None  # per row: candidate rows of cache.samples (empty: its own)
        self.sub_extras: dict[str, _Extra] = {}
        if sub_windows:
            self._index_sub_windows(sub_min_votes)

    def _extra(self, name: str, table: pd.DataFrame) -> _Extra:
        """Where the rows of extra input `name` live for each row of `table`, and how they become the model's array."""
        held = getattr(self.cache, "extras", None) or {}
        if name not in held:
            raise KeyError(f"model input {name!r} needs a cache that holds it; {self.cache.path} holds {sorted(held) or 'no extra inputs'}")
        decl = _declared(self.cache.meta, name)
        row, hi = self.cache.extra_bounds(name, table)
        return _Extra(row, hi, int(held[name]["window_rows"]), decl.to_input if decl else None, bool(decl and decl.masks))

    def _index_sub_windows(self, min_votes: Optional[int] = None) -> None:
        """For each row, the rows of `cache.samples` that are labelled sub-windows of its recording
        (with `min_votes`, only those whose own label had that many votes: stage 2 reads no low-vote window)."""
        samples = self.cache.samples
        rec = samples["recording_id"].astype(str).to_numpy()
        keep = np.ones(len(samples), bool) if min_votes is None else samples["n_votes"].to_numpy() >= min_votes
        groups = pd.Series(np.flatnonzero(keep)).groupby(rec[keep]).indices
        groups = {r: np.flatnonzero(keep)[ix] for r, ix in groups.items()}
        none = np.zeros(0, np.int64)
        self.sub = [np.asarray(groups.get(r, none), np.int64) for r in self.table["recording_id"].astype(str).to_numpy()]
        self.sub_eeg_rows = samples["eeg_row"].to_numpy(np.int64)
        self.sub_extras = {name: self._extra(name, samples) for name in self.extras}

    def set_epoch(self, seed: int) -> None:
        """Seed of this epoch's sub-window draws (`sub_windows`); same seed → same windows."""
        self.epoch_seed = int(seed)

    def set_view(self, shift_s: float) -> None:
        """Shift (s) of every item's EEG window from its centre, for test-time augmentation; 0 = centred."""
        self.view_shift = int(round(shift_s * self.fs))

    def _rows(self, i: int) -> tuple[int, dict[str, tuple[int, int]]]:
        """(eeg_row, {extra: (row, hi)}) of the window item i reads: its own, or this epoch's draw among its sub-windows."""
        cand = self.sub[i] if self.sub is not None else None
        if cand is None or len(cand) == 0:  # not in the cache's samples: its own window only
            return int(self.eeg_row[i]), {k: (int(x.row[i]), int(x.hi[i])) for k, x in self.extras.items()}
        j = int(cand[int(np.random.default_rng([self.epoch_seed % 2**32, i]).integers(len(cand)))])
        return int(self.sub_eeg_rows[j]), {k: (int(x.row[j]), int(x.hi[j])) for k, x in self.sub_extras.items()}

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """Item i: `eeg` (C, T) and each extra input, float32 tensors, plus `target` (K,), `weight` and `index`.

        Each array is copied once from the memory-mapped cache into its layout (the EEG's hemisphere flip
        is done in that copy); the random draws keep their order: time shift, masks, flip.
        """
        aug = self.augment
        shift = self.view_shift
        if aug is not None and aug.time_shift_s > 0:
            m = int(aug.time_shift_s * self.fs)
            shift += int(np.random.randint(-m, m + 1))
        eeg_row, extra_rows = self._rows(i)
        extras = {name: self._extra_input(name, x, *extra_rows[name]) for name, x in self.extras.items()}
        flip = aug is not None and aug.hemisphere_flip > 0 and np.random.rand() < aug.hemisphere_flip
        n = int(self.n_times[i])
        eeg = eeg_slice(self.cache.eeg, eeg_row + int(self.crop_offset[i]), self.eeg_lo[i], self.eeg_hi[i], n, shift,
                        perm=self.flip_perms["eeg"] if flip else None)
        item: dict[str, Any] = {"eeg": eeg, **(hemisphere_flip(extras, self.flip_perms, axis=0) if flip else extras)}
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in item.items()}
        out["target"] = torch.from_numpy(self.targets[i].copy())
        out["weight"] = torch.from_numpy(self.weights[i : i + 1].copy()).reshape(())
        out["index"] = torch.tensor(i, dtype=torch.int64)
        return out

    def _extra_input(self, name: str, x: _Extra, row: int, hi: int) -> np.ndarray:
        """Extra input `name`'s window as the model reads it (`to_input` layout), this item's own array, masked when training."""
        src = self.cache.extra(name)
        arr = extra_slice(src, row, hi, x.window_rows, copy=False)  # a view when no padding: copied once below
        arr = x.to_input(arr) if x.to_input is not None else arr
        if np.may_share_memory(arr, src):
            arr = np.array(arr, dtype=np.float32)
        aug = self.augment
        if aug is not None and x.masks:
            # raw power: NaN = "no data" until the model normalises it; bands up to 1/8 of an axis
            arr = mask_spec(arr, aug.time_mask, aug.freq_mask, fill=np.nan, max_frac=0.125)
            if self.albu is not None:
                arr = apply_albumentations(self.albu, arr, np.random.randint(2**31))
        return arr


def model_extras(cfg: ExperimentConfig) -> list[str]:
    """The dataset's extra inputs the experiment's model reads: those its `model.inputs` name (2D and multimodal models)."""
    if cfg.model.kind not in ("2d", "multimodal"):
        return []
    declared = {x.name for x in adapter_for(cfg.data).extra_inputs}
    return [name for name in cfg.model.inputs if name in declared]


def model_n_times(cfg: ExperimentConfig, duration_s: float, fs: float) -> int:
    """Samples per model input window: `model.window_s` (centred crop) or the cached window's `duration_s`."""
    full = int(round(duration_s * fs))
    return full if cfg.model.window_s is None else min(full, int(round(cfg.model.window_s * fs)))


def experiment_dataset(
    cfg: ExperimentConfig, cache: Any, table: pd.DataFrame, train: bool = False, weights: Optional[np.ndarray] = None,
    min_votes: Optional[int] = None,
) -> WindowDataset:
    """The Dataset an experiment trains (`train`: augmentations, random per-EEG sub-windows, drawn among those
    with >= `min_votes` votes when given, as in stage 2) or predicts on."""
    return WindowDataset(
        cache,
        table,
        extras=model_extras(cfg),
        augment=cfg.augment if train else None,
        weights=weights,
        window_s=cfg.model.window_s,
        sub_windows=train and cfg.selection.strategy == "per_eeg" and cfg.selection.per_eeg_window == "random",
        sub_min_votes=min_votes,
    )
