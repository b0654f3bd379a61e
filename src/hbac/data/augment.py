"""Augmentations: spectrogram masks and mixup."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from hbac.config import AugmentConfig


def mask_spec(spec: np.ndarray, aug: AugmentConfig, fill: float = float("nan")) -> np.ndarray:
    """SpecAugment-style masks on a (R, F, T) image: one time and one frequency band set to `fill`.

    The dataset holds raw Kaggle power, so the default fill is NaN ("no data"): the model's
    normalisation (`hbac.models.inputs.normalise_kaggle_spec`) leaves it out of the image's
    statistics and sets it to 0, the image mean, as the starter notebook does for missing values.
    """
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
