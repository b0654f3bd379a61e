"""Building blocks shared by the models: pooling layers (the hemisphere flip and spectrogram masks: `hbac.data.augment`)."""
from __future__ import annotations

import torch
import torch.nn as nn


class GeM(nn.Module):
    """Generalised-mean pooling with learnable exponent p: (B, F, H, W) → (B, F).

    p = 1 is average pooling, p → ∞ max pooling. Computed in fp32 because x**p overflows fp16.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            p = self.p.float().clamp(min=1.0)
            y = x.float().clamp(min=self.eps).pow(p).mean(dim=(-2, -1))
            return y.pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.3f}, eps={self.eps}"


class AttentionPool1d(nn.Module):
    """Attention pooling over time: (B, C, T) → (B, C), weights softmax(w·tanh(V x_t))."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(channels, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, T, C)
        a = torch.softmax(self.score(h).float(), dim=1).to(h.dtype)  # (B, T, 1)
        return (a * h).sum(dim=1)


class GRUPool1d(nn.Module):
    """Bidirectional GRU over time, then mean and max over time: (B, C, T) → (B, 4 * hidden)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(channels, hidden, batch_first=True, bidirectional=True)
        self.out_features = 4 * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32: a short sequence (T / 256 frames) costs little, and half-precision RNN kernels vary by GPU
        with torch.autocast(device_type=x.device.type, enabled=False):
            h, _ = self.gru(x.float().transpose(1, 2))  # (B, T, 2 * hidden)
        return torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1)
