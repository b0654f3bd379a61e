"""A model's input stage: per-window preprocessing that runs on the model's device (the GPU), the
same at training and at test time.

- `WindowFilter`: zero-phase FFT band-pass (and notch) of each EEG window, for caches built with
  `data.eeg.filter_on: window` (the cache holds the montaged, NaN-filled, clipped signal unfiltered).
  A 50 s test EEG and the same 50 s cut from a long training recording get the same values.
- `normalise_kaggle_spec`: raw Kaggle spectrogram power (B, 4, 100, 300) → log image. The dataset
  only slices the memory map; this does the rest.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn

from hbac.signals.filters import (
    window_filter_length,
    window_filter_pad,
    zero_phase_response,
)

# The Kaggle starter notebook's normalisation (log of the power clipped to e^-4 … e^8)
KAGGLE_LOG_LO, KAGGLE_LOG_HI = -4.0, 8.0
# the earlier fixed scaling: log(clip(x, 1e-4, 1e4)) mapped to [-1, 1]
FIXED_LO, FIXED_HI = math.log(1e-4), math.log(1e4)


def normalise_kaggle_spec(x: torch.Tensor, how: str = "standardize") -> torch.Tensor:
    """Raw Kaggle spectrogram windows (B, R, F, S) power (NaN past a file's end) → normalised fp32 image.

    standardize (the starter notebook): log(clip(x, e^-4, e^8)), then per image (each region of
    each sample) minus its mean over the finite values, divided by their std (+1e-6); NaN → 0 last.
    fixed: NaN → 0, log(clip(x, 1e-4, 1e4)) scaled to [-1, 1] by constants.
    """
    x = x.float()
    if how == "fixed":
        v = torch.log(torch.nan_to_num(x, nan=0.0).clamp(1e-4, 1e4))
        mid, half = (FIXED_HI + FIXED_LO) / 2, (FIXED_HI - FIXED_LO) / 2
        return (v - mid) / half
    if how != "standardize":
        raise ValueError(f"model.kaggle_spec_norm: unknown {how!r} (standardize, fixed)")
    v = torch.log(x.clamp(math.exp(KAGGLE_LOG_LO), math.exp(KAGGLE_LOG_HI)))  # NaN stays NaN
    ok = torch.isfinite(v)
    n = ok.sum(dim=(-2, -1), keepdim=True).clamp(min=1)
    z = torch.where(ok, v, torch.zeros_like(v))
    mean = z.sum(dim=(-2, -1), keepdim=True) / n
    var = (torch.where(ok, v - mean, torch.zeros_like(v)) ** 2).sum(dim=(-2, -1), keepdim=True) / n  # np.nanstd: ddof 0
    out = (v - mean) / (var.sqrt() + 1e-6)
    return torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


class WindowFilter(nn.Module):
    """Zero-phase FFT band-pass (and notch) along time: (B, C, T) → (B, C, T) fp32.

    Same arithmetic as `hbac.signals.filters.window_bandpass` (odd extension, rfft, |H|² of the
    Butterworth filter, irfft, crop). Gains are cached per window length and device.
    """

    def __init__(self, fs: float, band: Optional[Sequence[float]], notch_hz: Optional[float] = None) -> None:
        super().__init__()
        self.fs = float(fs)
        self.band = list(band) if band else None
        self.notch_hz = notch_hz
        self._gains: dict[tuple[int, str], torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f"fs={self.fs:g}, band={self.band}, notch_hz={self.notch_hz}"

    def _gain(self, n_fft: int, device: torch.device) -> torch.Tensor:
        key = (n_fft, str(device))
        if key not in self._gains:
            g = zero_phase_response(n_fft, self.fs, self.band, self.notch_hz)
            self._gains[key] = torch.as_tensor(g, dtype=torch.float32, device=device)
        return self._gains[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        pad = window_filter_pad(n, self.fs)
        n_fft = window_filter_length(n, self.fs)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            if pad > 0:
                left = 2 * x[..., :1] - x[..., 1 : pad + 1].flip(-1)
                right = 2 * x[..., -1:] - x[..., -pad - 1 : -1].flip(-1)
                x = torch.cat([left, x, right], dim=-1)
            z = torch.fft.rfft(x, n=n_fft, dim=-1)
            y = torch.fft.irfft(z * self._gain(n_fft, x.device), n=n_fft, dim=-1)
        return y[..., pad : pad + n].contiguous()


class InputStage(nn.Module):
    """batch → batch with `eeg` band-passed per window (when the cache left it unfiltered) and
    `kaggle_spec` normalised; other keys pass through. Runs first in every model's forward."""

    def __init__(self, fs: float, window_filter: Optional[dict] = None, kaggle_spec_norm: str = "standardize") -> None:
        super().__init__()
        wf = window_filter or {}
        self.eeg_filter: Optional[WindowFilter] = (
            WindowFilter(fs, wf.get("bandpass"), wf.get("notch_hz")) if (wf.get("bandpass") or wf.get("notch_hz")) else None
        )
        self.kaggle_spec_norm = kaggle_spec_norm

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = dict(batch)
        if self.eeg_filter is not None and "eeg" in batch:
            out["eeg"] = self.eeg_filter(batch["eeg"])
        if "kaggle_spec" in batch:
            out["kaggle_spec"] = normalise_kaggle_spec(batch["kaggle_spec"], self.kaggle_spec_norm)
        return out
