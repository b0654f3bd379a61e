"""Augmentations: mixup (spectrogram masks run inside the models, `hbac.models.layers.random_axis_mask`)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from hbac.config import AugmentConfig


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
