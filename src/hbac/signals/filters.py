"""NaN filling, band-pass and notch filters, resampling, the cached preprocessing chain (numpy/scipy, no torch).

`scipy.signal` (about 1.7 s to import, with scipy.stats and scipy.interpolate) is imported only by the
functions that filter or resample a recording (`_sps`): the per-window filter response a model builds
(`zero_phase_response`) is computed in closed form, so `submit.py` on a cache filtered per window never
imports it.
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from types import ModuleType
from typing import Optional, Sequence

import numpy as np
from scipy import fft as sp_fft


def fill_nan(x: np.ndarray, how: str = "interp", overwrite: bool = False) -> np.ndarray:
    """x: (n_chans, n_times); fill NaN per channel by linear interpolation, zero or channel mean.

    An all-NaN channel becomes zeros. `overwrite`: fill x itself (when float32 and writeable) rather than a copy.
    """
    given = x
    x = np.asarray(x, dtype=np.float32)
    mask = np.isnan(x)
    if not mask.any():
        return x
    if not (overwrite and x is given and x.flags.writeable):
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


def _sps() -> ModuleType:
    """scipy.signal, imported on first use."""
    # local import: scipy.signal costs about 1.7 s of start-up (submit.py, every prepare worker), and only
    # the recording filters / resampling below need it
    from scipy import signal

    return signal


@lru_cache(maxsize=32)
def _butter_sos(low: Optional[float], high: Optional[float], fs: float, order: int) -> np.ndarray:
    """Second-order sections of the Butterworth band-, low- or high-pass (the upper edge capped at 0.99 Nyquist)."""
    nyq = fs / 2
    if low and high:
        return _sps().butter(order, [low / nyq, min(high / nyq, 0.99)], btype="bandpass", output="sos")
    if high:
        return _sps().butter(order, min(high / nyq, 0.99), btype="lowpass", output="sos")
    return _sps().butter(order, low / nyq, btype="highpass", output="sos")


def butter_power(freqs: np.ndarray, fs: float, low: Optional[float], high: Optional[float], order: int = 4) -> np.ndarray:
    """|H|² of `_butter_sos(low, high, fs, order)` at `freqs` Hz (float64), in closed form.

    The digital Butterworth is the analog prototype 1 / (1 + Ω^2N) mapped by the bilinear transform
    (Ω ∝ tan(π f / fs)) and, for a band-pass, by Ω → (Ω² − Ωl·Ωh) / (Ω (Ωh − Ωl)); scipy's `butter`
    designs exactly these maps, so this equals `sosfreqz` of its sections up to rounding.
    """
    nyq = fs / 2
    t = np.tan(np.pi * np.minimum(np.asarray(freqs, dtype=np.float64), nyq) / fs)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if low and high:
            tl, th = math.tan(math.pi * low / fs), math.tan(math.pi * min(high / nyq, 0.99) / 2)
            x = (t * t - tl * th) / (t * (th - tl))
        elif high:
            x = t / math.tan(math.pi * min(high / nyq, 0.99) / 2)
        else:
            x = math.tan(math.pi * float(low) / fs) / t
        g = 1.0 / (1.0 + x ** (2 * order))
    return np.nan_to_num(g, nan=0.0)


def notch_power(freqs: np.ndarray, fs: float, freq: float, q: float = 30.0) -> np.ndarray:
    """|H|² of scipy's `iirnotch(freq, q, fs)` at `freqs` Hz (float64), from its coefficients in closed form."""
    w0 = 2 * float(freq) / fs * math.pi
    beta = math.tan(w0 / q / 2.0)
    gain = 1.0 / (1.0 + beta)
    b = gain * np.array([1.0, -2.0 * math.cos(w0), 1.0])
    a = np.array([1.0, -2.0 * gain * math.cos(w0), 2.0 * gain - 1.0])
    z = np.exp(-2j * np.pi * np.asarray(freqs, dtype=np.float64) / fs)  # z^-1 on the unit circle
    h = (b[0] + z * (b[1] + z * b[2])) / (a[0] + z * (a[1] + z * a[2]))
    return np.abs(h) ** 2


def bandpass(x: np.ndarray, fs: float, low: Optional[float], high: Optional[float], order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (either edge may be None)."""
    if not low and not high:
        return x
    sos = _butter_sos(low or None, high or None, float(fs), order)
    padlen = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1))
    return _sps().sosfiltfilt(sos, x, axis=-1, padlen=padlen).astype(np.float32)


def notch(x: np.ndarray, fs: float, freq: float, q: float = 30.0) -> np.ndarray:
    """Zero-phase IIR notch at `freq` Hz along the last axis."""
    if freq >= fs / 2:
        return x
    b, a = _sps().iirnotch(freq, q, fs)
    return _sps().filtfilt(b, a, x, axis=-1).astype(np.float32)


# --------------------------------------------------------------------------- per-window zero-phase FFT filter
WINDOW_FILTER_PAD_S = 5.0  # odd-extension padding on each side (s): the 0.5 Hz high-pass settles within it


def window_filter_pad(n_times: int, fs: float) -> int:
    """Samples of odd-extension padding on each side of an `n_times` window."""
    return int(min(max(n_times - 1, 0), round(WINDOW_FILTER_PAD_S * fs)))


def window_filter_length(n_times: int, fs: float) -> int:
    """FFT length used for an `n_times` window: padded, rounded up to a fast size."""
    return int(sp_fft.next_fast_len(n_times + 2 * window_filter_pad(n_times, fs), real=True))


def zero_phase_response(n_fft: int, fs: float, band: Optional[Sequence[float]], notch_hz: Optional[float] = None, order: int = 4) -> np.ndarray:
    """(n_fft // 2 + 1,) float64 gain at the rfft frequencies: |H|² of the Butterworth band-pass (and notch).

    |H|² is what `filtfilt` applies (forward + backward = squared magnitude, zero phase); computed in
    closed form (`butter_power`, `notch_power`), equal to scipy's `sosfreqz`/`freqz` of the same filters.
    """
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / fs)
    g = np.ones_like(freqs)
    if band and (band[0] or band[1]):
        g *= butter_power(freqs, float(fs), band[0] or None, band[1] or None, order)
    if notch_hz and notch_hz < fs / 2:
        g *= notch_power(freqs, float(fs), notch_hz, 30.0)
    return g


def odd_extend(x: np.ndarray, pad: int) -> np.ndarray:
    """(..., T) → (..., T + 2 pad): point-symmetric extension at both ends (as `filtfilt` pads)."""
    if pad <= 0:
        return x
    left = 2 * x[..., :1] - x[..., pad:0:-1]
    right = 2 * x[..., -1:] - x[..., -2 : -pad - 2 : -1]
    return np.concatenate([left, x, right], axis=-1)


def window_bandpass(x: np.ndarray, fs: float, band: Optional[Sequence[float]], notch_hz: Optional[float] = None) -> np.ndarray:
    """Zero-phase FFT band-pass (and notch) of one window or a batch: (..., T) float32 µV → same shape.

    The numpy twin of `hbac.models.inputs.WindowFilter` (which runs it on the GPU inside a model):
    odd extension, rfft, multiply by `zero_phase_response`, irfft, crop. A function of the window
    alone, so a 50 s test file and the same 50 s cut from a long training recording give the same values.
    """
    if not (band and (band[0] or band[1])) and not notch_hz:
        return np.asarray(x, dtype=np.float32)
    n = x.shape[-1]
    pad = window_filter_pad(n, fs)
    n_fft = window_filter_length(n, fs)
    g = zero_phase_response(n_fft, fs, band, notch_hz)
    z = sp_fft.rfft(odd_extend(np.asarray(x, dtype=np.float64), pad), n=n_fft, axis=-1)
    y = sp_fft.irfft(z * g, n=n_fft, axis=-1)[..., pad : pad + n]
    return np.ascontiguousarray(y, dtype=np.float32)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis."""
    if abs(fs_in - fs_out) < 1e-9:
        return x
    frac = np.round(fs_out / fs_in, 6)

    f = Fraction(frac).limit_denominator(1000)
    return _sps().resample_poly(x, f.numerator, f.denominator, axis=-1).astype(np.float32)


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
    overwrite: bool = False,
) -> np.ndarray:
    """The cache pipeline for one recording: NaN fill → notch → band-pass → ICA → resample → clip → z-score.

    x: (n_chans, n_times) float32 µV at `fs` Hz → (n_chans, n_times') float32, not necessarily C-contiguous.
    `ica`: (EOG correlation, EMG power ratio) thresholds of `signals.ica.ica_clean` (None: off);
    `channels` name the rows for it. `overwrite`: x may be written in place (prepare's own fresh read);
    otherwise the caller's array is left as it was.
    """
    given = x
    x = fill_nan(x, nan, overwrite=overwrite)
    if notch_hz:
        x = notch(x, fs, notch_hz)
    if band:
        x = bandpass(x, fs, band[0], band[1])
    if ica is not None:
        # local import: hbac.signals.ica pulls scikit-learn's FastICA (about 0.8 s), only for caches built with eeg.ica
        from hbac.signals.ica import ica_clean

        x, _ = ica_clean(x, fs, channels, eog_corr=ica[0], emg_ratio=ica[1])
    if fs_out and abs(fs_out - fs) > 1e-9:
        x = resample(x, fs, fs_out)
    if clip_uv:  # in place on an array made above (or on x when `overwrite`)
        owned = overwrite or (x is not given and not np.may_share_memory(x, given))
        x = np.clip(x, -clip_uv, clip_uv, out=x if owned and x.dtype == np.float32 and x.flags.writeable else None)
    if standardize:
        mu = x.mean(axis=1, keepdims=True)
        sd = x.std(axis=1, keepdims=True) + 1e-6
        x = (x - mu) / sd
    return np.asarray(x, dtype=np.float32)  # layout kept: the cache passes a (C, T) view of a time-major block
