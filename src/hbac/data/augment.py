"""Augmentations: the hemisphere flip (one copy for the data path and the batched/GPU path), spectrogram masks, mixup."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch

from hbac.config import AugmentConfig
from hbac.datasets import ExtraInput
from hbac.signals.montage import flip_permutation


def flip_perms(channels: Sequence[str], extras: Iterable[ExtraInput] = ()) -> dict[str, np.ndarray]:
    """Hemisphere-flip permutation of each model input's channel axis: `eeg` from its montage names
    (`signals.montage.flip_permutation`), every extra input from its adapter's declaration (`ExtraInput.flip`)."""
    perms = {"eeg": flip_permutation(list(channels))}
    perms.update({e.name: np.asarray(e.flip, dtype=np.int64) for e in extras if e.flip is not None})
    return perms


def hemisphere_flip(arrays: Mapping[str, Any], perms: Mapping[str, np.ndarray], axis: int = 0,
                    mask: Optional[Any] = None) -> dict[str, Any]:
    """Mirror left ↔ right: every array named in `perms` permuted along its channel `axis`.

    axis 0: one item (`eeg` (C, T), `kaggle_spec` (4, F, S)…, numpy or torch; the Dataset's
    augmentation); axis 1: a batch (B, C, …) (TTA on the model's device). `mask` (B,) bool flips
    only those samples of a batch. Returns a new dict; other keys pass through; its own inverse.
    """
    out = dict(arrays)
    for key, perm in perms.items():
        x = arrays.get(key)
        if x is None:
            continue
        if x.shape[axis] != len(perm):
            raise ValueError(f"hemisphere_flip: {key!r} has {x.shape[axis]} channels on axis {axis}, expected {len(perm)}")
        if isinstance(x, torch.Tensor):
            flipped = x.index_select(axis, torch.as_tensor(perm, device=x.device, dtype=torch.long))
            if mask is not None:
                m = torch.as_tensor(mask, device=x.device, dtype=torch.bool).reshape(-1, *([1] * (x.dim() - 1)))
                flipped = torch.where(m, flipped, x)
        else:
            flipped = np.take(x, perm, axis=axis)
            if mask is not None:
                flipped = np.where(np.asarray(mask, bool).reshape(-1, *([1] * (x.ndim - 1))), flipped, x)
        out[key] = flipped
    return out


def mask_spec(spec: np.ndarray, aug: AugmentConfig, fill: float = float("nan"), inplace: bool = False) -> np.ndarray:
    """SpecAugment-style masks on a (R, F, T) image: one time and one frequency band set to `fill`.

    The dataset holds raw Kaggle power, so the default fill is NaN ("no data"): the model's
    normalisation (`hbac.models.inputs.normalise_kaggle_spec`) leaves it out of the image's
    statistics and sets it to 0, the image mean, as the starter notebook does for missing values.
    `inplace`: write the masks into `spec` itself (the caller owns it) instead of a copy.
    """
    if not inplace:
        spec = spec.copy()
    _, f, t = spec.shape
    if aug.time_mask > 0 and np.random.rand() < aug.time_mask:
        w = np.random.randint(1, max(2, t // 8))
        s = np.random.randint(0, t - w)
        spec[:, :, s : s + w] = fill
    if aug.freq_mask > 0 and np.random.rand() < aug.freq_mask:
        w = np.random.randint(1, max(2, f // 8))
        s = np.random.randint(0, f - w)
        spec[:, s : s + w, :] = fill
    return spec


def mixup(batch: dict[str, torch.Tensor], alpha: float, generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """Mix every tensor input and the soft targets of a batch with a shuffled copy of itself."""
    lam = float(np.random.beta(alpha, alpha))
    perm = torch.randperm(batch["target"].shape[0], generator=generator)
    out = dict(batch)
    for k, v in batch.items():  # eeg, every extra input (e.g. kaggle_spec) and the target
        if k not in ("weight", "index") and torch.is_floating_point(v):
            out[k] = lam * v + (1 - lam) * v[perm]
    out["weight"] = lam * batch["weight"] + (1 - lam) * batch["weight"][perm]
    return out
