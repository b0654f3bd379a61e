"""Classic EEG features + a scikit-learn model: the non-deep baseline (`model.kind: features`).

Per channel (Welch PSD, 2 s Hann segments, 50 % overlap): log absolute and relative band
powers (delta 0.5–4, theta 4–8, alpha 8–13, beta 13–30, gamma 30–min(45, fs/2 − 1) Hz),
log Hjorth activity, mobility and complexity, line length, spectral entropy, peak frequency,
standard deviation and kurtosis; across channels: their channel means, left − right log band
power asymmetry of every mirrored channel pair (`hbac.signals.flip_permutation`), its mean
absolute value per band, mean |correlation| between channels and between mirrored pairs, and
a fine spectrum (log power share of 1 Hz bins 0.5–20.5 Hz: channel mean, and the max / min of
the two hemispheres, which catches lateralised rhythms whichever side they are on).
Windows longer than `CENTER_S` get a second block on their central `CENTER_S` seconds (the
part an HMS label describes), prefixed `c10s_`, without the per-channel columns.

Training fits a HistGradientBoostingClassifier or a scaled LogisticRegression on *soft*
targets by sample expansion: each row appears once per class with sample weight = target
probability × row weight × class weight, so the weighted log loss is the soft-label
cross-entropy (= KL up to a constant). A fold writes the same files as the torch trainer
(`fold{k}/best.pt`, `last.pt`, `history.csv`, `curve.png`, `oof.csv`, `fold.json`); the
checkpoint holds the fitted estimator under `"sklearn"` and `"kind": "features"`.
Features of an experiment's selected rows are computed once and kept in
`outputs/<experiment>/features.npz`, reused by every fold while the cache is unchanged.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.fft as sfft
from scipy.signal import get_window
from tqdm.auto import tqdm

from hbac.signals.filters import window_bandpass
from hbac.signals.montage import flip_permutation

log = logging.getLogger(__name__)


FEATURES_VERSION = 2  # bump when a feature's definition changes: stored feature files are recomputed


BANDS: list[tuple[str, float, float]] = [
    ("delta", 0.5, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 45.0),
]  # Hz, [low, high)


WELCH_SEG_S = 2.0  # Welch segment length (s): 0.5 Hz resolution, enough bins for the delta band


CENTER_S = 10.0  # seconds of the central sub-window that gets its own feature block


POWER_EPS = 1e-6  # µV²: floor inside log band powers (flat or band-stopped channels)


FINE_TOP_HZ = 20.5  # the fine 1 Hz spectrum covers 0.5–20.5 Hz, where the HMS patterns live


FINE_EPS = 1e-4  # floor inside the log power share of a fine bin


SCALAR_FEATURES = ["log_activity", "mobility", "complexity", "line_length", "spectral_entropy", "peak_hz", "std", "kurtosis"]


def bands(fs: float) -> list[tuple[str, float, float]]:
    """Frequency bands (name, low Hz, high Hz) usable at sampling rate `fs`: gamma stops at min(45, fs/2 − 1) Hz."""
    nyq = fs / 2.0
    out = []
    for name, lo, hi in BANDS:
        hi = min(hi, nyq - 1.0) if name == "gamma" else min(hi, nyq)
        if hi > lo:
            out.append((name, lo, hi))
    return out


def per_channel_names(fs: float) -> list[str]:
    """Names of the per-channel features, in output order (each appears once per channel)."""
    bs = [b for b, _, _ in bands(fs)]
    return [f"logpow_{b}" for b in bs] + [f"relpow_{b}" for b in bs] + SCALAR_FEATURES


def mirrored_pairs(channels: Sequence[str]) -> list[tuple[int, int]]:
    """(i, j), i < j: channel pairs that `flip_permutation` swaps (left/right mirror images)."""
    perm = flip_permutation(list(channels))
    return [(i, int(j)) for i, j in enumerate(perm) if i < j and perm[j] == i]


def fine_bins(fs: float) -> list[tuple[float, float]]:
    """1 Hz bins (low, high) from 0.5 to 20.5 Hz (below Nyquist) of the fine relative spectrum."""
    top = min(FINE_TOP_HZ, fs / 2.0)
    edges = np.arange(0.5, top + 1e-9, 1.0)
    return [(float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def feature_names(channels: Sequence[str], fs: float, per_channel: bool = True) -> list[str]:
    """Column names of `window_features(x, fs, channels, per_channel)`: `<feature>@<channel>`, `mean_<feature>`, `asym_<band>@<a>|<b>`, …"""
    pc = per_channel_names(fs)
    names = [f"{f}@{c}" for f in pc for c in channels] if per_channel else []
    names += [f"mean_{f}" for f in pc]
    pairs = mirrored_pairs(channels)
    bs = [b for b, _, _ in bands(fs)]
    names += [f"asym_{b}@{channels[i]}|{channels[j]}" for b in bs for i, j in pairs]
    if pairs:
        names += [f"absasym_mean_{b}" for b in bs]
    names += ["corr_abs_mean"]
    if pairs:
        names += ["corr_mirror_mean"]
    fb = [f"{lo:g}-{hi:g}hz" for lo, hi in fine_bins(fs)]
    names += [f"fine_mean_{b}" for b in fb]
    if pairs:
        names += [f"fine_hemimax_{b}" for b in fb] + [f"fine_hemimin_{b}" for b in fb]
    return names


def _var(x: np.ndarray) -> np.ndarray:
    """Variance over the last axis, float32 work, float64 sums: (..., T) → (...) float64."""
    xm = x - x.mean(axis=-1, keepdims=True)
    return np.einsum("...t,...t->...", xm, xm, dtype=np.float64) / x.shape[-1]


def welch_psd(x: np.ndarray, fs: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD of x: (..., T) → (freqs (nperseg//2+1,) Hz, psd (..., n_freqs) float32 µV²/Hz).

    Hann segments of `nperseg` samples with 50 % overlap, no detrending, one-sided density:
    equal to `scipy.signal.welch(x, fs, nperseg=nperseg, detrend=False)` but a segment at a time
    (scipy's ShortTimeFFT path is several times slower on (B, C, T) batches).
    """
    T = x.shape[-1]
    nperseg = int(min(nperseg, T))
    step = nperseg - nperseg // 2
    win = get_window("hann", nperseg).astype(np.float32)
    starts = range(0, T - nperseg + 1, step)
    acc = np.zeros(x.shape[:-1] + (nperseg // 2 + 1,), dtype=np.float64)
    for s in starts:
        spec = sfft.rfft(x[..., s : s + nperseg] * win, axis=-1, workers=-1)
        acc += spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2
    psd = acc / (len(starts) * fs * float((win.astype(np.float64) ** 2).sum()))
    psd[..., 1 : (nperseg + 1) // 2] *= 2.0  # one-sided: double all but DC (and Nyquist for even nperseg)
    return np.fft.rfftfreq(nperseg, 1.0 / fs), psd.astype(np.float32)


def _band_sum(f: np.ndarray, psd: np.ndarray, edges: Sequence[tuple[float, float]]) -> np.ndarray:
    """Power in each [low, high) band: psd (B, C, n_freqs) µV²/Hz → (B, n_bands, C) µV²."""
    df = float(f[1] - f[0]) if len(f) > 1 else 1.0
    return np.stack([psd[..., (f >= lo) & (f < hi)].sum(axis=-1) * df for lo, hi in edges], axis=1)


def window_features(x: np.ndarray, fs: float, channels: Sequence[str], per_channel: bool = True) -> np.ndarray:
    """x: (B, C, T) float32, µV, sampled at fs Hz → (B, F) float32 features (columns: `feature_names(channels, fs, per_channel)`).

    `per_channel=False` leaves out the `<feature>@<channel>` columns (channel means, asymmetries,
    correlations and the fine spectrum only).
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"window_features: x must be (B, C, T), got shape {x.shape}")
    B, C, T = x.shape
    if C != len(channels):
        raise ValueError(f"window_features: x has {C} channels, {len(channels)} channel names given")
    if T < 4:
        raise ValueError(f"window_features: windows of {T} samples are too short")
    bl = bands(fs)
    xc = x - x.mean(axis=-1, keepdims=True)

    # spectral: Welch PSD (B, C, n_freqs), µV²/Hz
    f, psd = welch_psd(xc, fs, int(min(T, round(WELCH_SEG_S * fs))))
    bp = _band_sum(f, psd, [(lo, hi) for _, lo, hi in bl])  # (B, nb, C) µV²
    total = bp.sum(axis=1, keepdims=True)
    logbp = np.log(bp + POWER_EPS)
    relbp = bp / np.maximum(total, POWER_EPS)
    m = (f >= bl[0][1]) & (f < bl[-1][2])
    p = psd[..., m]
    pn = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-30)
    entropy = -(pn * np.log(np.maximum(pn, 1e-30))).sum(axis=-1) / np.log(max(int(m.sum()), 2))
    peak = f[m][p.argmax(axis=-1)]

    # temporal: Hjorth parameters, line length, moments
    d1 = np.diff(xc, axis=-1)
    d2 = np.diff(d1, axis=-1)
    sq = xc * xc
    v0 = sq.mean(axis=-1, dtype=np.float64)
    v1 = _var(d1)
    v2 = _var(d2)
    mob = np.sqrt(v1 / np.maximum(v0, 1e-12))
    comp = np.sqrt(v2 / np.maximum(v1, 1e-12)) / np.maximum(mob, 1e-12)
    line = np.abs(d1).mean(axis=-1, dtype=np.float64)
    std = np.sqrt(v0)
    kurt = (sq * sq).mean(axis=-1, dtype=np.float64) / np.maximum(v0, 1e-12) ** 2
    del sq, d1, d2
    scal = np.stack([np.log(v0 + POWER_EPS), mob, comp, line, entropy, peak, std, kurt], axis=1)  # (B, 8, C)

    per_ch = np.concatenate([logbp, relbp, scal.astype(np.float32)], axis=1)  # (B, n_pc, C)
    parts = [per_ch.reshape(B, -1)] if per_channel else []
    parts.append(per_ch.mean(axis=2))

    # cross-channel: mirrored asymmetry and correlations
    pairs = mirrored_pairs(channels)
    li = np.array([i for i, _ in pairs], dtype=np.int64)
    ri = np.array([j for _, j in pairs], dtype=np.int64)
    if pairs:
        asym = logbp[:, :, li] - logbp[:, :, ri]  # (B, nb, n_pairs)
        parts += [asym.reshape(B, -1), np.abs(asym).mean(axis=2)]
    xn = xc / np.maximum(np.sqrt(v0 * T), 1e-6).astype(np.float32)[..., None]
    corr = np.matmul(xn, xn.transpose(0, 2, 1))  # (B, C, C)
    off = ~np.eye(C, dtype=bool)
    parts.append((np.abs(corr[:, off]).mean(axis=1) if C > 1 else np.zeros(B))[:, None])
    if pairs:
        parts.append(corr[:, li, ri].mean(axis=1)[:, None])

    # fine spectrum: log power share of 1 Hz bins, channel mean and per-hemisphere max / min
    fine = _band_sum(f, psd, fine_bins(fs))  # (B, n_fine, C)
    fine = np.log(fine / np.maximum(fine.sum(axis=1, keepdims=True), POWER_EPS) + FINE_EPS)
    parts.append(fine.mean(axis=2))
    if pairs:
        left, right = fine[:, :, li].mean(axis=2), fine[:, :, ri].mean(axis=2)
        parts += [np.maximum(left, right), np.minimum(left, right)]
    out = np.concatenate([np.asarray(a, dtype=np.float32).reshape(B, -1) for a in parts], axis=1)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def center_prefix(center_s: float = CENTER_S) -> str:
    """Name prefix of the central sub-window block, e.g. `c10s_`."""
    return f"c{center_s:g}s_"


def _has_center(n_times: int, fs: float) -> bool:
    return n_times > int(round(CENTER_S * fs))


def extract_names(channels: Sequence[str], fs: float, duration_s: float) -> list[str]:
    """Column names of `extract` for windows of `duration_s` seconds (plus a central block, without per-channel columns, when longer than CENTER_S)."""
    names = feature_names(channels, fs)
    if _has_center(int(round(duration_s * fs)), fs):
        names += [center_prefix() + n for n in feature_names(channels, fs, per_channel=False)]
    return names


def flip_features(X: np.ndarray, names: Sequence[str], channels: Sequence[str]) -> np.ndarray:
    """Features of the hemisphere-mirrored windows from X: (N, F) without recomputing them.

    Per-channel columns take their mirror channel's value, mirrored asymmetries change sign,
    channel means and correlations stay.
    """
    perm = flip_permutation(list(channels))
    mirror = {c: channels[int(perm[i])] for i, c in enumerate(channels)}
    pos = {n: i for i, n in enumerate(names)}
    idx = np.arange(len(names))
    sign = np.ones(len(names), dtype=np.float32)
    for k, n in enumerate(names):
        if "@" not in n:
            continue
        head, ch = n.split("@", 1)
        if "|" in ch:
            sign[k] = -1.0
        else:
            idx[k] = pos[f"{head}@{mirror[ch]}"]
    return X[:, idx] * sign


def _window_rows(cache: Any, table: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Start rows into cache.eeg (clamped to each recording) and the common window length in samples."""
    for c in ("eeg_row", "duration_s"):
        if c not in table.columns:
            raise KeyError(f"extract: the table has no '{c}' column (use a cache's sample table)")
    lens = np.rint(table["duration_s"].to_numpy(np.float64) * cache.fs).astype(np.int64)
    if len(lens) and (lens != lens[0]).any():
        raise ValueError(f"extract: windows of different lengths {sorted(set(lens.tolist()))[:5]} samples; features need one length")
    n = int(lens[0]) if len(lens) else 0
    rows = table["eeg_row"].to_numpy(np.int64)
    if "eeg_lo" in table.columns and "eeg_hi" in table.columns:
        rows = np.maximum(np.minimum(rows, table["eeg_hi"].to_numpy(np.int64) - n), table["eeg_lo"].to_numpy(np.int64))
    return rows, n


def extract(cache: Any, table: pd.DataFrame, batch: int = 64, progress: bool = True) -> np.ndarray:
    """Features of every row's EEG window in a cache → (N, F) float32 (columns: `extract_names`), `batch` windows at a time."""
    rows, n = _window_rows(cache, table)
    channels, fs = list(cache.channels), float(cache.fs)
    if len(rows) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    names = extract_names(channels, fs, n / fs)
    eeg = cache.eeg
    if int(rows.max()) + n > eeg.shape[0] or int(rows.min()) < 0:
        raise ValueError(f"extract: a window runs past the cache's EEG ({eeg.shape[0]} rows); the table does not match {cache.path}")
    nc = int(round(CENTER_S * fs))
    c0 = (n - nc) // 2
    wf = getattr(cache, "window_filter", None)
    out = np.empty((len(rows), len(names)), dtype=np.float32)
    bar = tqdm(total=len(rows), desc="features", leave=False, disable=not progress, unit="win")
    for b0 in range(0, len(rows), batch):
        r = rows[b0 : b0 + batch]
        x = np.stack([eeg[i : i + n] for i in r]).astype(np.float32).transpose(0, 2, 1)  # (B, C, T)
        if wf is not None:  # cache left unfiltered (eeg.filter_on: window): filter each window as the models do
            x = window_bandpass(x, fs, wf.get("bandpass"), wf.get("notch_hz"))
        feats = [window_features(x, fs, channels)]
        if _has_center(n, fs):
            feats.append(window_features(x[..., c0 : c0 + nc], fs, channels, per_channel=False))
        out[b0 : b0 + len(r)] = np.concatenate(feats, axis=1)
        bar.update(len(r))
    bar.close()
    return out
