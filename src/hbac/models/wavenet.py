"""WaveNet-style 1D model: one encoder of gated dilated convolutions shared by every montage channel.

Follows the public HMS WaveNet notebooks (Chris Deotte): each bipolar channel goes through the
same stack of wave blocks — per layer tanh(conv_d(x)) · sigmoid(conv_d(x)) with dilation d = 1, 2,
4, …, a 1x1 convolution and a residual sum — then global average pooling; the pooled features of
the 4 pairs of each double-banana chain are averaged, the 4 chains concatenated, and a small MLP
gives the logits. Channel sets without the 4 chains (e.g. CHB-MIT with extra channels) use the
mean and max over channels instead. Differences: odd kernels (same padding), an average-pool
between blocks (`wavenet.downsample`) to cut the cost of full-rate 50 s windows, BatchNorm after
each block, and fixed input scaling µV / `wavenet.scale_uv`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from hbac.config import ModelConfig
from hbac.models.inputs import InputStage
from hbac.signals.montage import chain_indices


class WaveBlock(nn.Module):
    """1x1 conv to `c_out`, then n gated dilated conv layers with residual sums: (N, c_in, T) → (N, c_out, T)."""

    def __init__(self, c_in: int, c_out: int, n_layers: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"model.wavenet.kernel_size: must be odd and positive, got {kernel_size}")
        self.inp = nn.Conv1d(c_in, c_out, 1)
        self.filt = nn.ModuleList()
        self.gate = nn.ModuleList()
        self.mix = nn.ModuleList()
        for i in range(n_layers):
            d = 2**i
            pad = d * (kernel_size - 1) // 2
            self.filt.append(nn.Conv1d(c_out, c_out, kernel_size, padding=pad, dilation=d))
            self.gate.append(nn.Conv1d(c_out, c_out, kernel_size, padding=pad, dilation=d))
            self.mix.append(nn.Conv1d(c_out, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        res = x
        for f, g, m in zip(self.filt, self.gate, self.mix):
            x = m(torch.tanh(f(x)) * torch.sigmoid(g(x)))
            res = res + x
        return res


class WaveNetModel(nn.Module):
    """Raw montage (B, C, T) µV → shared WaveNet encoder per channel → chain pooling → MLP: logits (B, n_classes)."""

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
        p = cfg.wavenet
        if not p.channels or len(p.channels) != len(p.dilation_layers):
            raise ValueError(f"model.wavenet: channels {p.channels} and dilation_layers {p.dilation_layers} need one entry per block")
        if p.downsample < 1 or p.scale_uv <= 0:
            raise ValueError("model.wavenet: downsample must be >= 1 and scale_uv > 0")
        if n_times is not None and n_times // p.downsample ** (len(p.channels) - 1) < 1:
            raise ValueError(f"model.wavenet: {n_times}-sample windows are too short for {len(p.channels)} blocks")
        self.channels = list(channels)
        self.n_classes = n_classes
        self.input_keys = ("eeg",)
        self.scale_uv = float(p.scale_uv)
        layers: list[nn.Module] = []
        c_prev = 1
        for i, (c, n) in enumerate(zip(p.channels, p.dilation_layers)):
            layers += [WaveBlock(c_prev, c, n, p.kernel_size), nn.BatchNorm1d(c)]
            if p.downsample > 1 and i < len(p.channels) - 1:
                layers.append(nn.AvgPool1d(p.downsample, ceil_mode=True))
            c_prev = c
        self.encoder = nn.Sequential(*layers)
        idx = chain_indices(self.channels)
        self.register_buffer("chain_idx", None if idx is None else torch.tensor(idx, dtype=torch.long), persistent=False)
        self.num_features = 4 * c_prev if idx is not None else 2 * c_prev
        self.head: nn.Module = (
            nn.Sequential(nn.Dropout(cfg.drop_rate), nn.Linear(self.num_features, p.hidden), nn.ReLU(inplace=True), nn.Linear(p.hidden, n_classes))
            if head
            else nn.Identity()
        )

    def forward_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch['eeg'] (B, C, T) → (B, num_features): per-channel pooled encodings, averaged per chain."""
        if "eeg" not in batch:
            raise KeyError(f"model input 'eeg' missing from batch (keys: {sorted(batch)})")
        x = batch["eeg"]
        b, c, t = x.shape
        h = self.encoder((x.float() / self.scale_uv).reshape(b * c, 1, t))  # (B·C, F, T')
        f = h.mean(dim=-1).reshape(b, c, -1)  # (B, C, F)
        if self.chain_idx is not None:
            z = f.index_select(1, self.chain_idx.flatten()).reshape(b, 4, 4, -1).mean(dim=2)  # (B, 4, F)
            return z.flatten(1)
        return torch.cat([f.mean(dim=1), f.amax(dim=1)], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch → logits (B, n_classes) (or features when built with head=False)."""
        return self.head(self.forward_features(self.input_stage(batch)))
