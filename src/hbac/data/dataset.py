"""The torch Dataset over a cache: one item per sample-table row.

Datasets read caches only (memory-mapped arrays); `__getitem__` never opens a raw file.

Which samples of the cached window an item holds:

* `window_s` crops the model's EEG window to that many seconds centred on the row's window
  (HMS: the labelled 10 s sit in the middle of the 50 s), instead of the whole cached window;
* `set_view(shift_s)` shifts that crop (test-time augmentation over offsets, `tta.offsets_s`);
* `augment.time_shift_s` shifts it at random (training);
* `sub_windows=True` (the `per_eeg` selection with `per_eeg_window: random`) reads, for each row,
  one of its recording's labelled sub-windows, drawn again each epoch from `set_epoch(seed)` and
  the row index — deterministic, so a resumed run reads the same windows. The target stays the
  row's (the recording's aggregated votes).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from hbac.cache.format import SPEC_STEPS
from hbac.config import AugmentConfig, ExperimentConfig
from hbac.data.albument import apply_albumentations, build_albumentations
from hbac.data.augment import mask_spec
from hbac.data.selection import vote_columns
from hbac.datasets.kaggle_spec import kaggle_spec_image
from hbac.signals.montage import SPEC_REGIONS, flip_permutation


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
        window_s: Optional[float] = None,
        sub_windows: bool = False,
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
        self.albu = build_albumentations(augment.albumentations) if augment is not None else None
        if self.albu is not None and not use_kaggle_spec:
            raise ValueError(
                "augment.albumentations: acts on the Kaggle spectrogram image, which this model does not read "
                "(model.inputs lacks kaggle_spec); mask in-model spectrograms with augment.time_mask / freq_mask"
            )
        self.eeg_perm = flip_permutation(list(cache.channels))
        self.spec_perm = flip_permutation(SPEC_REGIONS)
        # the model's window: `window_s` centred in the cached one
        full = self.n_times
        if window_s is not None:
            self.n_times = np.minimum(full, int(round(window_s * self.fs)))
        self.crop_offset = (full - self.n_times) // 2
        self.view_shift = 0
        self.epoch_seed = 0
        self.sub_eeg: Optional[list[np.ndarray]] = None
        self.sub_spec: Optional[list[np.ndarray]] = None
        if sub_windows:
            self._index_sub_windows()

    def _index_sub_windows(self) -> None:
        """For each row, the eeg_row (and spec_row) of every labelled sub-window of its recording in the cache."""
        samples = self.cache.samples
        rec = samples["recording_id"].astype(str).to_numpy()
        groups = pd.Series(np.arange(len(samples))).groupby(rec).indices
        eeg_rows = samples["eeg_row"].to_numpy(np.int64)
        spec_rows = samples["spec_row"].to_numpy(np.int64) if "spec_row" in samples else None
        self.sub_eeg, self.sub_spec = [], []
        for i, r in enumerate(self.table["recording_id"].astype(str).to_numpy()):
            idx = groups.get(r)
            if idx is None:  # not in the cache's samples: its own window only
                self.sub_eeg.append(self.eeg_row[i : i + 1])
                self.sub_spec.append(self.spec_row[i : i + 1] if self.use_kaggle_spec else np.zeros(1, np.int64))
                continue
            self.sub_eeg.append(eeg_rows[idx])
            self.sub_spec.append(spec_rows[idx] if spec_rows is not None else np.zeros(len(idx), np.int64))

    def set_epoch(self, seed: int) -> None:
        """Seed of this epoch's sub-window draws (`sub_windows`); same seed → same windows."""
        self.epoch_seed = int(seed)

    def set_view(self, shift_s: float) -> None:
        """Shift (s) of every item's EEG window from its centre, for test-time augmentation; 0 = centred."""
        self.view_shift = int(round(shift_s * self.fs))

    def _rows(self, i: int) -> tuple[int, int]:
        """(eeg_row, spec_row) of the window item i reads: its own, or this epoch's draw among its sub-windows."""
        if self.sub_eeg is None:
            return int(self.eeg_row[i]), int(self.spec_row[i]) if self.use_kaggle_spec else -1
        cand = self.sub_eeg[i]
        j = int(np.random.default_rng([self.epoch_seed % 2**32, i]).integers(len(cand)))
        return int(cand[j]), int(self.sub_spec[i][j]) if self.use_kaggle_spec else -1

    def __len__(self) -> int:
        return len(self.table)

    def _eeg(self, i: int, row: int, shift: int) -> np.ndarray:
        """(C, n) window starting `shift` samples after the centred crop of the window at `row`, clamped to the recording."""
        n = int(self.n_times[i])
        start = row + int(self.crop_offset[i]) + shift
        start = int(np.clip(start, self.eeg_lo[i], max(self.eeg_lo[i], self.eeg_hi[i] - n)))
        w = np.asarray(self.cache.eeg[start : start + n], dtype=np.float32)
        if len(w) < n:  # recording shorter than the window: pad with zeros
            w = np.concatenate([w, np.zeros((n - len(w), w.shape[1]), np.float32)])
        return np.ascontiguousarray(w.T)

    def _spec(self, i: int, r: int) -> np.ndarray:
        raw = np.full((SPEC_STEPS, 400), np.nan, np.float32)
        if r >= 0:
            end = min(r + SPEC_STEPS, int(self.spec_end[i]))
            chunk = np.asarray(self.cache.spec[r:end], dtype=np.float32)
            raw[: len(chunk)] = chunk
        return kaggle_spec_image(raw)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        aug = self.augment
        shift = self.view_shift
        if aug is not None and aug.time_shift_s > 0:
            m = int(aug.time_shift_s * self.fs)
            shift += int(np.random.randint(-m, m + 1))
        eeg_row, spec_row = self._rows(i)
        item: dict[str, Any] = {"eeg": self._eeg(i, eeg_row, shift)}
        if self.use_kaggle_spec:
            spec = self._spec(i, spec_row)
            if aug is not None:
                spec = mask_spec(spec, aug)
            if self.albu is not None:
                spec = apply_albumentations(self.albu, spec, np.random.randint(2**31))
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


def uses_kaggle_spec(cfg: ExperimentConfig) -> bool:
    """Whether the experiment's model reads the Kaggle spectrogram (so the Dataset must load it)."""
    return cfg.model.kind in ("2d", "multimodal") and "kaggle_spec" in cfg.model.inputs


def model_n_times(cfg: ExperimentConfig, duration_s: float, fs: float) -> int:
    """Samples per model input window: `model.window_s` (centred crop) or the cached window's `duration_s`."""
    full = int(round(duration_s * fs))
    return full if cfg.model.window_s is None else min(full, int(round(cfg.model.window_s * fs)))


def experiment_dataset(
    cfg: ExperimentConfig, cache: Any, table: pd.DataFrame, train: bool = False, weights: Optional[np.ndarray] = None
) -> WindowDataset:
    """The Dataset an experiment trains (`train`: augmentations, random per-EEG sub-windows) or predicts on."""
    return WindowDataset(
        cache,
        table,
        use_kaggle_spec=uses_kaggle_spec(cfg),
        augment=cfg.augment if train else None,
        weights=weights,
        window_s=cfg.model.window_s,
        sub_windows=train and cfg.selection.strategy == "per_eeg" and cfg.selection.per_eeg_window == "random",
    )
