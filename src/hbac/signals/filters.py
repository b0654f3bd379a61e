"""NaN filling, band-pass and notch filters, resampling, the cached preprocessing chain (numpy/scipy, no torch)."""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
from scipy import signal as sps

from hbac.signals.ica import ica_clean


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
    ica: Optional[tuple[float, float]] = None,
    channels: Sequence[str] = (),
) -> np.ndarray:
    """The cache pipeline for one recording: NaN fill → notch → band-pass → ICA → resample → clip → z-score.

    x: (n_chans, n_times) float32 µV at `fs` Hz → (n_chans, n_times') float32. `ica`: (EOG correlation,
    EMG power ratio) thresholds of `signals.ica.ica_clean` (None: off); `channels` name the rows for it.
    """
    x = fill_nan(x, nan)
    if notch_hz:
        x = notch(x, fs, notch_hz)
    if band:
        x = bandpass(x, fs, band[0], band[1])
    if ica is not None:
        x, _ = ica_clean(x, fs, channels, eog_corr=ica[0], emg_ratio=ica[1])
    if fs_out and abs(fs_out - fs) > 1e-9:
        x = resample(x, fs, fs_out)
    if clip_uv:
        x = np.clip(x, -clip_uv, clip_uv)
    if standardize:
        mu = x.mean(axis=1, keepdims=True)
        sd = x.std(axis=1, keepdims=True) + 1e-6
        x = (x - mu) / sd
    return np.ascontiguousarray(x, dtype=np.float32)
