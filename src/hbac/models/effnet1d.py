"""EfficientNet-1D: the EfficientNet recipe (MBConv blocks with squeeze-excitation) on the raw montage.

A stem convolution, then stages of inverted-bottleneck blocks — 1x1 expansion, depthwise
convolution (the stage's first block strided), squeeze-excitation, 1x1 projection, residual when
shapes allow — a 1x1 head convolution, average + max pooling over time and a linear layer.
Input is the montage (B, C, T) in µV scaled by the fixed factor `effnet1d.scale_uv`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from hbac.config import ModelConfig
from hbac.models.inputs import InputStage


def _conv_bn(c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv1d (same padding for odd k) → BatchNorm1d → SiLU (optional): (N, c_in, T) → (N, c_out, ceil(T / stride))."""
    layers: list[nn.Module] = [nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2, groups=groups, bias=False), nn.BatchNorm1d(c_out)]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite1d(nn.Module):
    """Channel gates from the time-average: (N, C, T) → (N, C, T)."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Conv1d(channels, reduced, 1), nn.SiLU(inplace=True), nn.Conv1d(reduced, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=-1, keepdim=True))


class MBConv1d(nn.Module):
    """Inverted bottleneck: expand 1x1 → depthwise k (stride) → SE → project 1x1 (+ residual): (N, c_in, T) → (N, c_out, T')."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, expand: int, se_ratio: float) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = _conv_bn(c_in, mid) if expand != 1 else nn.Identity()
        self.dw = _conv_bn(mid, mid, kernel_size, stride=stride, groups=mid)
        self.se = SqueezeExcite1d(mid, max(1, int(c_in * se_ratio))) if se_ratio > 0 else nn.Identity()
        self.project = _conv_bn(mid, c_out, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class EfficientNet1DModel(nn.Module):
    """Raw montage (B, C, T) µV → stem → MBConv stages → head conv → avg+max pool → Linear: logits (B, n_classes)."""

    def __init__(
        self,
        cfg: ModelConfig,
        n_classes: int,
        channels: Sequence[str],
        fs: float,
        n_times: Optional[int] = None,
        head: bool = True,
        window_filter: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.input_stage = InputStage(fs, window_filter, cfg.kaggle_spec_norm)  # per-window band-pass (models.inputs)
        p = cfg.effnet1d
        if not (len(p.widths) == len(p.depths) == len(p.strides)) or not p.widths:
            raise ValueError(f"model.effnet1d: widths {p.widths}, depths {p.depths} and strides {p.strides} need one entry per stage")
        if p.kernel_size < 1 or p.kernel_size % 2 == 0:
            raise ValueError(f"model.effnet1d.kernel_size: must be odd and positive, got {p.kernel_size}")
        if p.expand < 1 or p.scale_uv <= 0 or min(p.depths) < 1 or min(p.strides) < 1 or p.stem_stride < 1:
            raise ValueError("model.effnet1d: expand, depths, strides and stem_stride must be >= 1, scale_uv > 0")
        self.channels = list(channels)
        self.n_classes = n_classes
        self.input_keys = ("eeg",)
        self.scale_uv = float(p.scale_uv)
        self.stem = _conv_bn(len(self.channels), p.stem, p.kernel_size, stride=p.stem_stride)
        blocks: list[nn.Module] = []
        c_prev = p.stem
        for w, d, s in zip(p.widths, p.depths, p.strides):
            for j in range(d):
                blocks.append(MBConv1d(c_prev, w, p.kernel_size, s if j == 0 else 1, p.expand, p.se_ratio))
                c_prev = w
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = _conv_bn(c_prev, p.head)
        self.num_features = 2 * p.head
        self.drop: nn.Module = nn.Dropout(cfg.drop_rate) if head else nn.Identity()
        self.head: nn.Module = nn.Linear(self.num_features, n_classes) if head else nn.Identity()

    def forward_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch['eeg'] (B, C, T) → (B, 2 · head): mean and max over time of the head features."""
        if "eeg" not in batch:
            raise KeyError(f"model input 'eeg' missing from batch (keys: {sorted(batch)})")
        h = self.conv_head(self.blocks(self.stem(batch["eeg"].float() / self.scale_uv)))
        return torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch → logits (B, n_classes) (or features when built with head=False)."""
        return self.head(self.drop(self.forward_features(self.input_stage(batch))))
