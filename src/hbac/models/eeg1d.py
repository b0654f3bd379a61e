"""1D model: residual CNN over the raw montage → temporal pooling (avg | GRU | attention) → Linear.

Input `eeg` (B, C, T) in µV, divided by a fixed `oned.scale_uv` (32 µV): amplitude is part of
the signal (a per-sample std would erase it).
Each stage downsamples time by `oned.downsample`: T → ceil(T / downsample**n_stages) frames.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from hbac.config import ModelConfig
from hbac.models.inputs import InputStage
from hbac.models.layers import AttentionPool1d, GRUPool1d


class ResBlock1d(nn.Module):
    """conv-BN-SiLU-conv-BN + shortcut, SiLU: (B, c_in, T) → (B, c_out, ceil(T / stride))."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.act = nn.SiLU(inplace=True)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            # 1x1 conv with the same stride: ceil(T / stride) frames, like conv1 with odd kernels
            self.short = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))
        nn.init.zeros_(self.bn2.weight)  # each block starts as (near) identity: stable deep training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.short(x))


class EEG1DModel(nn.Module):
    """Raw montage (B, C, T) → residual 1D CNN → pooling → dropout → Linear: logits (B, n_classes)."""

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
        p = cfg.oned
        if not p.channels:
            raise ValueError("model.oned.channels: needs at least one stage")
        if p.kernel_size < 1 or p.kernel_size % 2 == 0:
            raise ValueError(f"model.oned.kernel_size: must be odd and positive, got {p.kernel_size}")
        if p.blocks_per_stage < 1 or p.downsample < 1:
            raise ValueError("model.oned.blocks_per_stage and model.oned.downsample must be >= 1")
        if p.scale_uv <= 0:
            raise ValueError(f"model.oned.scale_uv: must be positive, got {p.scale_uv}")
        self.channels = list(channels)
        self.n_classes = n_classes
        self.scale_uv = float(p.scale_uv)
        self.input_stage = InputStage(fs, window_filter, cfg.kaggle_spec_norm)
        self.input_keys = ("eeg",)
        n_in = len(self.channels)
        c0 = p.channels[0]
        self.stem = nn.Sequential(
            nn.Conv1d(n_in, c0, p.kernel_size, padding=p.kernel_size // 2, bias=False),
            nn.BatchNorm1d(c0),
            nn.SiLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        c_prev = c0
        for c in p.channels:
            for j in range(p.blocks_per_stage):
                blocks.append(ResBlock1d(c_prev, c, p.kernel_size, stride=p.downsample if j == 0 else 1))
                c_prev = c
        self.blocks = nn.Sequential(*blocks)
        self.pooling = p.pooling
        if p.pooling == "avg":
            self.pool: nn.Module = nn.AdaptiveAvgPool1d(1)
            self.num_features = c_prev
        elif p.pooling == "gru":
            self.pool = GRUPool1d(c_prev, p.hidden)
            self.num_features = 4 * p.hidden
        elif p.pooling == "attention":
            self.pool = AttentionPool1d(c_prev, p.hidden)
            self.num_features = c_prev
        else:
            raise ValueError(f"model.oned.pooling: unknown {p.pooling!r} (avg, gru, attention)")
        if n_times is not None:
            frames = n_times
            for _ in p.channels:
                frames = -(-frames // p.downsample)
            if frames < 1:
                raise ValueError(f"model.oned: {n_times}-sample windows are too short for {len(p.channels)} stages")
        self.drop: nn.Module = nn.Dropout(cfg.drop_rate) if head else nn.Identity()
        self.head: nn.Module = nn.Linear(self.num_features, n_classes) if head else nn.Identity()

    def cam_layers(self) -> dict[str, nn.Module]:
        """Grad-CAM target (hbac.explain): the residual stack's output (B, C', T'), after the last skip connection."""
        return {"1d": self.blocks}

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Fixed scaling: (B, C, T) µV / scale_uv, in fp32."""
        return x.float() / self.scale_uv

    def forward_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch['eeg'] (B, C, T) after `input_stage` → features (B, num_features)."""
        if "eeg" not in batch:
            raise KeyError(f"model input 'eeg' missing from batch (keys: {sorted(batch)})")
        x = self.blocks(self.stem(self.scale(batch["eeg"])))  # (B, C', T')
        f = self.pool(x)
        return f.flatten(1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch → logits (B, n_classes) (or features when built with head=False)."""
        return self.head(self.drop(self.forward_features(self.input_stage(batch))))
