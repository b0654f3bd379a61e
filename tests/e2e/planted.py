"""A purpose-built synthetic set for the explanation proofs: the class signature sits in a known time span.

Class 'burst' windows carry a 6 Hz burst on the left-lateral chain (LL) in seconds 32–42 of a
50 s window; class 'none' windows are the same background without it. The span is off-centre,
so a time-reversed or transposed map lands elsewhere.
"""
from __future__ import annotations

import numpy as np
import torch

from hbac.config import ModelConfig, OneDParams, SpecParams
from hbac.models import build_model
from hbac.signals.montage import montage_names

FS = 50.0
DURATION_S = 50.0
SPAN_S = (32.0, 42.0)
BURST_HZ = 6.0
CHANNELS = montage_names("double_banana")  # 16 pairs: LL, RL, LP, RP chains
LL = [0, 1, 2, 3]
CLASSES = ["burst", "none"]


def planted_set(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(eeg (n, 16, T) float32 µV, labels (n,) int64: 0 = burst in SPAN_S on LL, 1 = none); half of each."""
    rng = np.random.default_rng(seed)
    t_n = int(FS * DURATION_S)
    t = np.arange(t_n) / FS
    # background: smoothed white noise (brown-ish, like EEG) plus a weak 10 Hz rhythm everywhere
    x = rng.standard_normal((n, len(CHANNELS), t_n)).astype(np.float32)
    x = np.cumsum(x, axis=-1)
    x -= np.convolve(np.ones(25) / 25, np.ones(1), mode="same")[None, None, :1] * 0
    x = x - np.apply_along_axis(lambda v: np.convolve(v, np.ones(51) / 51, mode="same"), -1, x)
    x = 10.0 * x / x.std(axis=-1, keepdims=True)
    x += 5.0 * np.sin(2 * np.pi * 10.0 * t + rng.uniform(0, 2 * np.pi, (n, len(CHANNELS), 1)))
    y = np.arange(n) % 2
    lo, hi = int(SPAN_S[0] * FS), int(SPAN_S[1] * FS)
    env = np.hanning(hi - lo)
    for i in np.nonzero(y == 0)[0]:
        ph = rng.uniform(0, 2 * np.pi)
        burst = 30.0 * env * np.sin(2 * np.pi * BURST_HZ * t[lo:hi] + ph)
        x[i, LL, lo:hi] += burst[None]
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))


def tiny_model(kind: str) -> torch.nn.Module:
    """A registry model small enough to train in seconds on a CPU: '1d' residual CNN + GRU, or '2d' MobileNet on STFT images."""
    if kind == "1d":
        cfg = ModelConfig(kind="1d", oned=OneDParams(channels=[8, 16, 32], kernel_size=7, blocks_per_stage=1, downsample=4, pooling="gru", hidden=16), drop_rate=0.0)
    else:
        cfg = ModelConfig(kind="2d", backbone="tf_mobilenetv3_small_minimal_100", inputs=["eeg_spec"], drop_rate=0.0,
                          spec=SpecParams(kind="stft", n_fft=64, hop=10, win_length=64, fmin=0.5, fmax=20.0, out_height=32, out_width=256))
    return build_model(cfg, n_classes=len(CLASSES), channels=CHANNELS, fs=FS, n_times=int(FS * DURATION_S))


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Plain cross-entropy training in batches of 16; returns the loss of each epoch."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    losses = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        tot = 0.0
        for i in range(0, len(x), 16):
            idx = perm[i : i + 16]
            loss = torch.nn.functional.cross_entropy(model({"eeg": x[idx]}), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        losses.append(tot / len(x))
    model.eval()
    return losses
