"""The HMS Kaggle spectrogram, an extra input of the HMS adapter: column layout, 10-minute windows, image."""
from __future__ import annotations

import math

import numpy as np

from hbac.signals.montage import SPEC_REGIONS

# (k + 3) * 200/1024 Hz, k = 0 … 99, rounded to 2 decimals exactly as the real column names are
# (3.125 → 3.13 and 15.625 → 15.63, yet 0.78125 → 0.78): no rounding rule reproduces them all.
SPEC_FREQS = [
    0.59, 0.78, 0.98, 1.17, 1.37, 1.56, 1.76, 1.95, 2.15, 2.34, 2.54, 2.73, 2.93, 3.13, 3.32, 3.52, 3.71,
    3.91, 4.1, 4.3, 4.49, 4.69, 4.88, 5.08, 5.27, 5.47, 5.66, 5.86, 6.05, 6.25, 6.45, 6.64, 6.84, 7.03,
    7.23, 7.42, 7.62, 7.81, 8.01, 8.2, 8.4, 8.59, 8.79, 8.98, 9.18, 9.38, 9.57, 9.77, 9.96, 10.16, 10.35,
    10.55, 10.74, 10.94, 11.13, 11.33, 11.52, 11.72, 11.91, 12.11, 12.3, 12.5, 12.7, 12.89, 13.09, 13.28,
    13.48, 13.67, 13.87, 14.06, 14.26, 14.45, 14.65, 14.84, 15.04, 15.23, 15.43, 15.63, 15.82, 16.02,
    16.21, 16.41, 16.6, 16.8, 16.99, 17.19, 17.38, 17.58, 17.77, 17.97, 18.16, 18.36, 18.55, 18.75,
    18.95, 19.14, 19.34, 19.53, 19.73, 19.92,
]  # Hz; column names print them as Python floats: `LL_4.1`, not `LL_4.10`


SPEC_STEP_S = 2.0


SPEC_WINDOW_S = 600.0  # 10 minutes → 300 steps


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


def kaggle_spec_regions(window: np.ndarray) -> np.ndarray:
    """(n_steps, 400) raw window → (4 regions, 100 freqs, n_steps) float32 raw power (NaN kept).

    The layout only: models normalise it on their device (`hbac.models.inputs.normalise_kaggle_spec`).
    """
    w = np.asarray(window, dtype=np.float32)
    return np.ascontiguousarray(w.reshape(w.shape[0], len(SPEC_REGIONS), 100).transpose(1, 2, 0))


def kaggle_spec_starter(window: np.ndarray) -> np.ndarray:
    """(n_steps, 400) raw window → (4, 100, n_steps) float32 as the Kaggle starter notebook normalises
    each region: log(clip(x, e^-4, e^8)), minus nanmean, over (nanstd + 1e-6), NaN → 0. A numpy reference."""
    img = np.log(np.clip(kaggle_spec_regions(window).astype(np.float64), math.exp(-4), math.exp(8)))
    out = np.empty_like(img)
    for k in range(img.shape[0]):
        m, sd = np.nanmean(img[k]), np.nanstd(img[k])
        out[k] = np.nan_to_num((img[k] - m) / (sd + 1e-6), nan=0.0)
    return out.astype(np.float32)


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
