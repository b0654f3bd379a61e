"""Albumentations pipelines declared in YAML (`augment.albumentations`), applied on the CPU in the Dataset.

They act on the Kaggle spectrogram image, which the Dataset loads; spectrograms computed inside the
model (eeg_spec, eeg_cwt) are masked on the GPU by `augment.time_mask` / `freq_mask` instead.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hbac.config import TransformSpec, check_albumentations


def build_albumentations(specs: Sequence[TransformSpec], key: str = "augment.albumentations") -> Any:
    """An `albumentations.Compose` of the listed transforms (validated first: ConfigError names the key), or None if empty."""
    if not specs:
        return None
    check_albumentations(list(specs), key)
    # albumentations pulls in OpenCV (~1 s): imported only by runs that configure it
    import albumentations as A

    return A.Compose([getattr(A, s.name)(**s.params) for s in specs])


def apply_albumentations(compose: Any, spec: np.ndarray, seed: int) -> np.ndarray:
    """Apply `compose` to a (R, F, T) spectrogram stack as one (F, T, R) image (same masks on every region).

    `seed` makes the draw reproducible (the Dataset takes it from numpy's per-epoch state).
    """
    compose.set_random_seed(int(seed))
    img = np.ascontiguousarray(np.transpose(spec, (1, 2, 0)), dtype=np.float32)
    out = compose(image=img)["image"]
    return np.ascontiguousarray(np.transpose(out, (2, 0, 1)), dtype=np.float32)
