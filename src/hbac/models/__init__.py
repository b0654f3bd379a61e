"""Model builders: a registry keyed by `ModelConfig.kind`, no `eval`.

Every model maps a batch dict (`eeg` (B, C, T) float32 µV, optionally `kaggle_spec`
(B, 4, 100, 300) float32 raw power, NaN past a file's end) to logits (B, n_classes). Its
`input_stage` (`models.inputs`) runs first, on the model's device: the per-window band-pass of
caches built with eeg.filter_on: window, and the Kaggle spectrogram normalisation. It has
`input_keys` (batch keys it reads) and `num_features` (the hemisphere flip of a batch is
`hbac.data.augment.hemisphere_flip`, with the permutations the dataset declares). 2D and multimodal models also have `set_spec_augment(time_mask, freq_mask)`.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

import torch.nn as nn

from hbac.config import ModelConfig
from hbac.models.eeg1d import EEG1DModel
from hbac.models.effnet1d import EfficientNet1DModel
from hbac.models.layers import GeM
from hbac.models.multimodal import MultimodalModel
from hbac.models.spec2d import Spec2DModel
from hbac.models.wavenet import WaveNetModel

log = logging.getLogger(__name__)

ModelBuilder = Callable[..., nn.Module]

MODELS: dict[str, ModelBuilder] = {
    "2d": Spec2DModel,
    "1d": EEG1DModel,
    "wavenet": WaveNetModel,
    "effnet1d": EfficientNet1DModel,
    "multimodal": MultimodalModel,
}


def build_model(
    cfg: ModelConfig,
    n_classes: int,
    channels: Sequence[str],
    fs: float,
    n_times: Optional[int] = None,
    window_filter: Optional[dict] = None,
) -> nn.Module:
    """Build the torch model for `cfg.kind`: channels = montage names (C), fs in Hz, n_times = window samples.

    window_filter: {bandpass, notch_hz} the model applies to each EEG window first (`Cache.window_filter`
    of a cache built with eeg.filter_on: window); None when the cache is already filtered.
    """
    if cfg.kind not in MODELS:
        if cfg.kind == "features":
            raise ValueError("model.kind 'features' is a sklearn baseline, not a torch model; it is not built by hbac.models")
        raise ValueError(f"model.kind: unknown {cfg.kind!r} (torch models: {', '.join(MODELS)})")
    if n_classes < 2:
        raise ValueError(f"build_model: n_classes must be >= 2, got {n_classes}")
    if not channels:
        raise ValueError("build_model: empty channel list")
    model = MODELS[cfg.kind](cfg, n_classes, list(channels), float(fs), n_times, window_filter=window_filter)
    log.info(
        "model %s%s: %s parameters", cfg.kind, f" ({cfg.backbone})" if cfg.kind in ("2d", "multimodal") else "", f"{count_parameters(model):,}"
    )
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "MODELS",
    "build_model",
    "count_parameters",
    "GeM",
    "Spec2DModel",
    "EEG1DModel",
    "WaveNetModel",
    "EfficientNet1DModel",
    "MultimodalModel",
]
