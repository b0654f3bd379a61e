"""Continuous wavelet transform (complex Morlet) as a torch module that runs inside a model (on the GPU).

The analytic Morlet wavelet at centre frequency f with `n_cycles` cycles has, in the frequency
domain, a Gaussian of standard deviation σ_f = f / n_cycles around f and nothing at negative
frequencies (σ_t = n_cycles / (2π f) in time). The transform is computed as a product in the
frequency domain: FFT of the signal × the wavelets' Gaussians, then an inverse FFT over only the
bins below fmax + 4 σ_f — the wavelet outputs are analytic (one-sided), so that truncation is an
alias-free decimation, and memory stays (B·C, n_freqs, n_kept) instead of (B·C, n_freqs, T).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def morlet_frequencies(fmin: float, fmax: float, n_freqs: int) -> np.ndarray:
    """(n_freqs,) log-spaced centre frequencies in Hz, low first."""
    if not 0 < fmin < fmax:
        raise ValueError(f"model.cwt: need 0 < fmin < fmax, got fmin {fmin}, fmax {fmax}")
    if n_freqs < 2:
        raise ValueError(f"model.cwt.n_freqs: need >= 2, got {n_freqs}")
    return np.geomspace(fmin, fmax, n_freqs)


class MorletCWT(torch.nn.Module):
    """Raw montage → log-power Morlet scalogram image, computed in fp32 on whatever device x is on.

    forward(x: (B, C, T) float, µV) → (B, C, out_height, out_width): |CWT|² at `n_freqs`
    log-spaced frequencies in [fmin, fmax] (low frequencies in the first rows), log10,
    standardised per sample, resized. A sinusoid of amplitude a at a centre frequency gives
    |CWT| ≈ a at that frequency (each wavelet's frequency response peaks at 1).
    """

    def __init__(
        self,
        fs: float,
        fmin: float = 0.5,
        fmax: float = 20.0,
        n_freqs: int = 40,
        n_cycles: float = 7.0,
        out_height: int = 128,
        out_width: int = 256,
    ) -> None:
        super().__init__()
        if fmax >= fs / 2:
            raise ValueError(f"model.cwt.fmax: {fmax} Hz is not below the Nyquist frequency {fs / 2} Hz")
        if n_cycles <= 0:
            raise ValueError(f"model.cwt.n_cycles: must be > 0, got {n_cycles}")
        self.fs = float(fs)
        self.n_cycles = float(n_cycles)
        self.out_size = (out_height, out_width)
        self.register_buffer("freqs", torch.tensor(morlet_frequencies(fmin, fmax, n_freqs), dtype=torch.float32), persistent=False)
        self.f_top = float(fmax * (1 + 4.0 / n_cycles))  # beyond this every wavelet's response is < e^-8

    def responses(self, n_fft: int) -> tuple[torch.Tensor, int]:
        """(n_freqs, n_keep) real frequency responses of the wavelets on the first n_keep rfft bins of an n_fft FFT."""
        bin_hz = self.fs / n_fft
        n_keep = min(n_fft // 2 + 1, int(math.ceil(self.f_top / bin_hz)) + 1)
        nu = torch.arange(n_keep, device=self.freqs.device, dtype=torch.float32) * bin_hz  # (n_keep,) Hz
        sigma = self.freqs / self.n_cycles  # (n_freqs,) Hz
        resp = torch.exp(-0.5 * ((nu[None, :] - self.freqs[:, None]) / sigma[:, None]) ** 2)
        return resp, n_keep

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) → |CWT|² (B, C, n_freqs, n_keep), time decimated to n_keep frames over the window."""
        b, c, t = x.shape
        n_fft = t  # circular convolution: the window edges wrap by about one wavelet length
        z = x.float().reshape(b * c, t)
        z = z - z.mean(dim=1, keepdim=True)
        spec = torch.fft.rfft(z, n=n_fft)  # (BC, n_fft // 2 + 1)
        resp, n_keep = self.responses(n_fft)
        # analytic signal: positive frequencies doubled; the inverse FFT over n_keep bins is a decimation
        prod = spec[:, None, :n_keep] * (2.0 * resp)[None]  # (BC, F, n_keep)
        w = torch.fft.ifft(prod, n=n_keep, dim=-1) * (n_keep / n_fft)
        p = w.real**2 + w.imag**2
        return p.reshape(b, c, p.shape[1], p.shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) µV → (B, C, out_height, out_width) standardised log10 power."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            p = torch.log10(self.power(x) + 1e-6)
            mu = p.mean(dim=(1, 2, 3), keepdim=True)
            sd = p.std(dim=(1, 2, 3), keepdim=True) + 1e-6
            p = (p - mu) / sd
            return F.interpolate(p, size=self.out_size, mode="bilinear", align_corners=False)
