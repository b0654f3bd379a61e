"""Model builders: a registry keyed by `ModelConfig.kind` (each class imported on first use), no `eval`.

Every model maps a batch dict (`eeg` (B, C, T) float32 µV, optionally `kaggle_spec`
(B, 4, 100, 300) float32 raw power, NaN past a file's end) to logits (B, n_classes). Its
`input_stage` (`models.inputs`) runs first, on the model's device: the per-window band-pass of
caches built with eeg.filter_on: window, and the Kaggle spectrogram normalisation. It has
`input_keys` (batch keys it reads) and `num_features` (the hemisphere flip of a batch is
`hbac.data.augment.hemisphere_flip`, with the permutations the dataset declares). 2D and multimodal models also have `set_spec_augment(time_mask, freq_mask)`.
"""
from __future__ import annotations

import importlib
import logging
from typing import Callable, Optional, Sequence

import torch.nn as nn

from hbac.config import ModelConfig
from hbac.models.layers import GeM

log = logging.getLogger(__name__)

ModelBuilder = Callable[..., nn.Module]

# kind → "module:class", imported on first use: the 2D families pull timm (and with it torchvision and
# torch._dynamo, about 3.5 s), which an ensemble of 1D models never needs (`python submit.py` start-up)
MODELS: dict[str, str] = {
    "2d": "hbac.models.spec2d:Spec2DModel",
    "1d": "hbac.models.eeg1d:EEG1DModel",
    "wavenet": "hbac.models.wavenet:WaveNetModel",
    "effnet1d": "hbac.models.effnet1d:EfficientNet1DModel",
    "multimodal": "hbac.models.multimodal:MultimodalModel",
}


def model_class(kind: str) -> ModelBuilder:
    """The model class registered for `kind` (its module imported now)."""
    module, name = MODELS[kind].split(":")
    return getattr(importlib.import_module(module), name)


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
    model = model_class(cfg.kind)(cfg, n_classes, list(channels), float(fs), n_times, window_filter=window_filter)
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
    "model_class",
    "GeM",
]
