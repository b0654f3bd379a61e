"""Signal processing: montages, NaN filling, filters, resampling, spectrograms.

Conventions: multichannel signals are `(n_chans, n_times)` float32 in µV unless a
function says otherwise; sampling rates in Hz; times in seconds.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal as sps

from hbac.constants import (
    BANANA_CHAINS,
    CENTRAL_CHAIN,
    CHBMIT_BANANA,
    HMS_EEG_CHANNELS,
    SPEC_REGIONS,
    SPEC_STEP_S,
    SPEC_WINDOW_S,
)

# --------------------------------------------------------------------------- montages


def montage_pairs(montage: str) -> list[tuple[str, str]]:
    """Bipolar pairs (anode, cathode) of a named montage; `raw` gives unipolar channels (name, '')."""
    if montage == "double_banana":
        return [p for chain in BANANA_CHAINS.values() for p in chain]
    if montage == "double_banana_central":
        return [p for chain in BANANA_CHAINS.values() for p in chain] + list(CENTRAL_CHAIN)
    if montage == "raw":
        return [(c, "") for c in HMS_EEG_CHANNELS]
    if montage == "chbmit_banana":
        return [tuple(n.split("-")) for n in CHBMIT_BANANA]  # type: ignore[misc]
    raise ValueError(f"unknown montage {montage!r}")


def montage_names(montage: str) -> list[str]:
    """Channel names of a montage, e.g. 'Fp1-F7'."""
    return [f"{a}-{b}" if b else a for a, b in montage_pairs(montage)]


def montage_matrix(montage: str, channels: Sequence[str]) -> np.ndarray:
    """(n_out, n_in) float32 matrix M with bipolar = M @ unipolar; raises naming a missing channel."""
    idx = {c.upper(): i for i, c in enumerate(channels)}
    pairs = montage_pairs(montage)
    m = np.zeros((len(pairs), len(channels)), dtype=np.float32)
    for r, (a, b) in enumerate(pairs):
        for name, sign in ((a, 1.0), (b, -1.0)):
            if not name:
                continue
            if name.upper() not in idx:
                raise KeyError(f"montage {montage!r} needs channel {name!r}, not in {list(channels)}")
            m[r, idx[name.upper()]] = sign
    return m


def apply_montage(x: np.ndarray, channels: Sequence[str], montage: str) -> np.ndarray:
    """x: (n_in, n_times) unipolar → (n_out, n_times) bipolar float32."""
    return (montage_matrix(montage, channels) @ x).astype(np.float32, copy=False)


_ELECTRODE = re.compile(r"^([A-Za-z]+?)(\d+|[zZ])$")


def _flip_electrode(name: str) -> str:
    m = _ELECTRODE.match(name)
    if not m or m.group(2) in ("z", "Z"):
        return name
    n = int(m.group(2))
    return f"{m.group(1)}{n + 1 if n % 2 else n - 1}"


def flip_permutation(names: Sequence[str]) -> np.ndarray:
    """Index permutation that mirrors left↔right hemispheres: x[perm] is the flipped signal.

    Works on bipolar ('Fp1-F7') and unipolar ('C3') names, and on Kaggle spectrogram regions
    (LL↔RL, LP↔RP). Channels without a mirror (midline, EKG) stay in place.
    """
    regions = {"LL": "RL", "RL": "LL", "LP": "RP", "RP": "LP"}
    pos = {n.upper(): i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    for i, n in enumerate(names):
        if n in regions:
            flipped = regions[n]
        else:
            flipped = "-".join(_flip_electrode(p) for p in n.split("-"))
        j = pos.get(flipped.upper())
        if j is not None:
            perm[i] = j
    return perm


# --------------------------------------------------------------------------- cleaning


def fill_nan(x: np.ndarray, how: str = "interp") -> np.ndarray:
    """x: (n_chans, n_times); fill NaN per channel by linear interpolation, zero or channel mean.

    An all-NaN channel becomes zeros.
    """
    x = np.asarray(x, dtype=np.float32)
    mask = np.isnan(x)
    if not mask.any():
        return x
    x = x.copy()
    for c in np.nonzero(mask.any(axis=1))[0]:
        m = mask[c]
        if m.all() or how == "zero":
            x[c, m] = 0.0
        elif how == "mean":
            x[c, m] = float(np.mean(x[c, ~m]))
        elif how == "interp":
            t = np.arange(x.shape[1])
            x[c, m] = np.interp(t[m], t[~m], x[c, ~m])
        else:
            raise ValueError(f"unknown NaN handling {how!r}")
    return x


@lru_cache(maxsize=32)
def _butter_sos(low: Optional[float], high: Optional[float], fs: float, order: int) -> np.ndarray:
    nyq = fs / 2
    if low and high:
        return sps.butter(order, [low / nyq, min(high / nyq, 0.99)], btype="bandpass", output="sos")
    if high:
        return sps.butter(order, min(high / nyq, 0.99), btype="lowpass", output="sos")
    return sps.butter(order, low / nyq, btype="highpass", output="sos")


def bandpass(x: np.ndarray, fs: float, low: Optional[float], high: Optional[float], order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (either edge may be None)."""
    if not low and not high:
        return x
    sos = _butter_sos(low or None, high or None, float(fs), order)
    padlen = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1))
    return sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen).astype(np.float32)


def notch(x: np.ndarray, fs: float, freq: float, q: float = 30.0) -> np.ndarray:
    """Zero-phase IIR notch at `freq` Hz along the last axis."""
    if freq >= fs / 2:
        return x
    b, a = sps.iirnotch(freq, q, fs)
    return sps.filtfilt(b, a, x, axis=-1).astype(np.float32)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis."""
    if abs(fs_in - fs_out) < 1e-9:
        return x
    frac = np.round(fs_out / fs_in, 6)
    from fractions import Fraction

    f = Fraction(frac).limit_denominator(1000)
    return sps.resample_poly(x, f.numerator, f.denominator, axis=-1).astype(np.float32)


def preprocess(
    x: np.ndarray,
    fs: float,
    nan: str = "interp",
    band: Optional[Sequence[float]] = None,
    notch_hz: Optional[float] = None,
    clip_uv: Optional[float] = None,
    standardize: bool = False,
    fs_out: Optional[float] = None,
) -> np.ndarray:
    """The cache pipeline for one recording: NaN fill → notch → band-pass → resample → clip → z-score.

    x: (n_chans, n_times) float32 µV at `fs` Hz → (n_chans, n_times') float32.
    """
    x = fill_nan(x, nan)
    if notch_hz:
        x = notch(x, fs, notch_hz)
    if band:
        x = bandpass(x, fs, band[0], band[1])
    if fs_out and abs(fs_out - fs) > 1e-9:
        x = resample(x, fs, fs_out)
    if clip_uv:
        x = np.clip(x, -clip_uv, clip_uv)
    if standardize:
        mu = x.mean(axis=1, keepdims=True)
        sd = x.std(axis=1, keepdims=True) + 1e-6
        x = (x - mu) / sd
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------- Kaggle spectrograms


def kaggle_spec_window(spec: np.ndarray, times: np.ndarray, offset_s: float, window_s: float = SPEC_WINDOW_S) -> np.ndarray:
    """Crop a Kaggle spectrogram to the window starting at `offset_s`.

    spec: (n_steps, 400) values of the 400 `LL_0.59 … RP_19.92` columns; times: (n_steps,) the
    `time` column (1, 3, 5 … s). Returns (n_window_steps, 400) float32 with
    n_window_steps = window_s / 2 (300 for 10 min); rows past the end are NaN.
    """
    n = int(round(window_s / SPEC_STEP_S))
    start = int(np.searchsorted(times, offset_s, side="left"))
    out = np.full((n, spec.shape[1]), np.nan, dtype=np.float32)
    chunk = spec[start : start + n]
    out[: len(chunk)] = chunk
    return out


def kaggle_spec_image(window: np.ndarray, eps: float = 1e-4, lo: float = math.log(1e-4), hi: float = math.log(1e4)) -> np.ndarray:
    """(n_steps, 400) raw window → (4 regions, 100 freqs, n_steps) float32, log-clip normalised.

    log(clip(x, eps, 1e4)), scaled to about [-1, 1] ((v - mid) / half-range); NaN → 0.
    Frequencies go low → high along axis 1; regions in `SPEC_REGIONS` order.
    """
    w = np.nan_to_num(window.astype(np.float32), nan=0.0)
    w = np.log(np.clip(w, eps, 1e4))
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    w = (w - mid) / half
    img = w.reshape(w.shape[0], len(SPEC_REGIONS), 100).transpose(1, 2, 0)
    return np.ascontiguousarray(img, dtype=np.float32)


# --------------------------------------------------------------------------- torch spectrograms


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
        self.win_length = win_length or n_fft
        self.out_size = (out_height, out_width)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        n_freqs = n_fft // 2 + 1
        freqs = torch.linspace(0, fs / 2, n_freqs)
        if kind == "mel":
            self.register_buffer("fbank", _mel_fbank(n_freqs, n_mels, fs, fmin, fmax), persistent=False)
        elif kind == "stft":
            keep = torch.nonzero((freqs >= fmin) & (freqs <= fmax)).flatten()
            self.register_buffer("keep", keep, persistent=False)
        else:
            raise ValueError(f"unknown spectrogram kind {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = x.float().reshape(b * c, t)
            s = torch.stft(z, self.n_fft, self.hop, self.win_length, self.window, center=True, return_complex=True)
            p = s.real**2 + s.imag**2  # (b*c, n_freqs, frames)
            if self.kind == "mel":
                p = torch.einsum("nft,fm->nmt", p, self.fbank)
            else:
                p = p.index_select(1, self.keep)
            p = torch.log10(p + 1e-6)
            p = p.reshape(b, c, p.shape[1], p.shape[2])
            mu = p.mean(dim=(1, 2, 3), keepdim=True)
            sd = p.std(dim=(1, 2, 3), keepdim=True) + 1e-6
            p = (p - mu) / sd
            p = F.interpolate(p, size=self.out_size, mode="bilinear", align_corners=False)
        return p


def stft_numpy(x: np.ndarray, fs: float, nperseg: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain numpy power spectrogram (for synthetic Kaggle spectrograms and features).

    x: (..., n_times) → (freqs (F,), times (S,) s at segment centres, power (..., F, S)).
    """
    f, t, z = sps.stft(x, fs=fs, nperseg=nperseg, noverlap=nperseg - step, boundary=None, padded=False)
    return f, t, (np.abs(z) ** 2).astype(np.float32)
