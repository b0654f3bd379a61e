"""EEG spectrograms: the torch STFT/mel module that runs inside a model (on the GPU)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def _mel_fbank(n_freqs: int, n_mels: int, fs: float, fmin: float, fmax: float) -> torch.Tensor:
    """(n_freqs, n_mels) triangular HTK mel filterbank."""

    def hz2mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel2hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, fs / 2, n_freqs)
    mpts = np.linspace(hz2mel(np.array(fmin)), hz2mel(np.array(fmax)), n_mels + 2)
    fpts = mel2hz(mpts)
    fb = np.zeros((n_freqs, n_mels), dtype=np.float32)
    for i in range(n_mels):
        lo, c, hi = fpts[i], fpts[i + 1], fpts[i + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[:, i] = np.maximum(0, np.minimum(up, down))
    # a filter narrower than one FFT bin would be all-zero: give it its nearest bin
    for i in range(n_mels):
        if fb[:, i].sum() == 0:
            fb[np.argmin(np.abs(freqs - fpts[i + 1])), i] = 1.0
    return torch.from_numpy(fb)


class EEGSpectrogram(torch.nn.Module):
    """Raw montage → log-power spectrogram image, computed in fp32 (on whatever device x is on).

    forward(x: (B, C, T) float) → (B, C, out_height, out_width): STFT power (or mel power)
    restricted to [fmin, fmax], log10, per-sample standardised, resized; low frequencies first.
    """

    def __init__(
        self,
        fs: float,
        kind: str = "mel",
        n_fft: int = 1024,
        hop: int = 50,
        win_length: Optional[int] = None,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float = 20.0,
        out_height: int = 128,
        out_width: int = 256,
    ) -> None:
        super().__init__()
        self.kind, self.n_fft, self.hop = kind, n_fft, hop
        self.fmin, self.fmax = float(fmin), float(fmax)  # Hz of the first / last image row (hbac.explain reads them)
        self.win_length = win_length or n_fft
        self.out_size = (out_height, out_width)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        n_freqs = n_fft // 2 + 1
        freqs = torch.linspace(0, fs / 2, n_freqs)
        if kind == "mel":
            fbank = _mel_fbank(n_freqs, n_mels, fs, fmin, fmax)
            used = torch.nonzero(fbank.sum(dim=1) > 0).flatten()  # the bins any filter weighs (e.g. 0-20 Hz of 0-100 Hz)
        elif kind == "stft":
            used = torch.nonzero((freqs >= fmin) & (freqs <= fmax)).flatten()
        else:
            raise ValueError(f"unknown spectrogram kind {kind!r}")
        # the power, mel product and log are computed on these bins only (a contiguous band; for the HMS mel
        # configs about a fifth of the FFT's bins): the same values as over every bin, where the others weigh 0
        self.bins = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)
        if kind == "mel":
            self.register_buffer("fbank", fbank[self.bins[0] : self.bins[1]].contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = x.float().reshape(b * c, t)
            s = torch.stft(z, self.n_fft, self.hop, self.win_length, self.window, center=True, return_complex=True)
            s = s[:, self.bins[0] : self.bins[1]]
            p = s.real**2 + s.imag**2  # (b*c, used bins, frames)
            if self.kind == "mel":
                p = torch.einsum("nft,fm->nmt", p, self.fbank)
            else:
                p = p.contiguous()  # the layout index_select gave: the same reduction order below, the same values
            p = torch.log10(p + 1e-6)
            p = p.reshape(b, c, p.shape[1], p.shape[2])
            mu = p.mean(dim=(1, 2, 3), keepdim=True)
            sd = p.std(dim=(1, 2, 3), keepdim=True) + 1e-6
            p = (p - mu) / sd
            p = F.interpolate(p, size=self.out_size, mode="bilinear", align_corners=False)
        return p
