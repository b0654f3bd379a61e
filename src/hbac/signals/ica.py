"""ICA artifact removal with automatic EOG / EMG component rejection (scikit-learn FastICA).

The recording (n_chans, n_times) is unmixed into as many components as channels (fitted on at
most `fit_s` seconds of evenly spread samples, so long recordings stay cheap). A component is
rejected as ocular (EOG) when at least 30 % of its variance is in 0.1–3 Hz and that slow activity
correlates with the frontopolar channels' (|r| ≥ `eog_corr`; channels whose name starts with FP), and as muscle (EMG) when more than
`emg_ratio` of its power lies above 20 Hz. Rejected components are zeroed and the channels
rebuilt. Deterministic for a seed.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
from scipy.signal import butter, sosfiltfilt, welch
from sklearn.decomposition import FastICA

log = logging.getLogger(__name__)


def _slow(x: np.ndarray, fs: float) -> np.ndarray:
    """0.1–3 Hz zero-phase band of (…, n_times) signals (ocular activity lives there)."""
    sos = butter(2, [0.1, 3.0], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=-1)


def _eog_proxy(x: np.ndarray, fs: float, channels: Sequence[str]) -> Optional[np.ndarray]:
    """Mean 0.1–3 Hz activity of the frontopolar channels (n_times,), or None without any."""
    fp = [i for i, c in enumerate(channels) if c.upper().startswith("FP")]
    if not fp:
        return None
    return _slow(x[fp], fs).mean(axis=0)


def reject_components(sources: np.ndarray, fs: float, eog: Optional[np.ndarray], eog_corr: float,
                      emg_ratio: float) -> tuple[list[int], list[int]]:
    """sources (n_comp, n_times) → (EOG component indices, EMG component indices)."""
    eog_idx, emg_idx = [], []
    if eog is not None and np.std(eog) > 0:
        slow = _slow(sources, fs)
        for k, s in enumerate(slow):
            share = np.var(s) / (np.var(sources[k]) + 1e-12)  # ocular components live mostly below 3 Hz
            if share >= 0.3 and abs(np.corrcoef(s, eog)[0, 1]) >= eog_corr:
                eog_idx.append(k)
    f, p = welch(sources, fs=fs, nperseg=min(sources.shape[1], int(2 * fs)), axis=1)
    band = (f >= 1.0) & (f <= fs / 2)
    high = band & (f >= 20.0)
    ratio = p[:, high].sum(axis=1) / (p[:, band].sum(axis=1) + 1e-12)
    emg_idx = [k for k in np.nonzero(ratio >= emg_ratio)[0].tolist() if k not in eog_idx]
    return eog_idx, emg_idx


def ica_clean(x: np.ndarray, fs: float, channels: Sequence[str], eog_corr: float = 0.6, emg_ratio: float = 0.6,
              fit_s: float = 120.0, seed: int = 0) -> tuple[np.ndarray, dict[str, list[int]]]:
    """x (n_chans, n_times) µV → (cleaned x float32, {"eog": [...], "emg": [...]} rejected component indices)."""
    c, n = x.shape
    if c < 2 or n < int(2 * fs):
        return np.asarray(x, dtype=np.float32), {"eog": [], "emg": []}
    xd = np.asarray(x, dtype=np.float64)
    step = max(1, n // max(1, int(fit_s * fs)))
    ica = FastICA(n_components=c, whiten="unit-variance", random_state=seed, max_iter=400, tol=1e-3)
    ica.fit(xd[:, ::step].T)
    sources = ica.transform(xd.T).T  # (c, n)
    eog_idx, emg_idx = reject_components(sources, fs, _eog_proxy(xd, fs, channels), eog_corr, emg_ratio)
    if not eog_idx and not emg_idx:
        return np.asarray(x, dtype=np.float32), {"eog": [], "emg": []}
    sources[eog_idx + emg_idx] = 0.0
    y = ica.inverse_transform(sources.T).T
    log.debug("ICA: rejected EOG %s, EMG %s of %d components", eog_idx, emg_idx, c)
    return y.astype(np.float32), {"eog": eog_idx, "emg": emg_idx}
