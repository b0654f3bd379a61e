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

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import scipy.fft as sfft
import torch
from scipy.signal import get_window
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm.auto import tqdm

from hbac.config import ExperimentConfig, to_dict
from hbac.io import atomic_path, atomic_write_csv, atomic_write_json
from hbac.signals import flip_permutation

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
HGB_BINS = 255  # features are quantised to this many levels before gradient boosting
LOGREG_C = 0.01  # inverse L2 strength on standardised features: hundreds of correlated features
PROB_FLOOR = 1e-4  # probability given to a class the model never saw in training
SCALAR_FEATURES = ["log_activity", "mobility", "complexity", "line_length", "spectral_entropy", "peak_hz", "std", "kurtosis"]


# --------------------------------------------------------------------------- feature definitions


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
    out = np.empty((len(rows), len(names)), dtype=np.float32)
    bar = tqdm(total=len(rows), desc="features", leave=False, disable=not progress, unit="win")
    for b0 in range(0, len(rows), batch):
        r = rows[b0 : b0 + batch]
        x = np.stack([eeg[i : i + n] for i in r]).astype(np.float32).transpose(0, 2, 1)  # (B, C, T)
        feats = [window_features(x, fs, channels)]
        if _has_center(n, fs):
            feats.append(window_features(x[..., c0 : c0 + nc], fs, channels, per_channel=False))
        out[b0 : b0 + len(r)] = np.concatenate(feats, axis=1)
        bar.update(len(r))
    bar.close()
    return out


# --------------------------------------------------------------------------- sklearn models on soft targets


class QuantileBinner(TransformerMixin, BaseEstimator):
    """Quantise each feature to ≤ n_bins levels at its (unweighted) quantiles: X (N, F) → bin indices (N, F) float32.

    In front of HistGradientBoosting: with sample weights, its own binning computes weighted
    quantiles feature by feature (minutes for a few hundred features); on ≤ 255 distinct
    values it takes them as they are.
    """

    def __init__(self, n_bins: int = HGB_BINS) -> None:
        self.n_bins = n_bins

    def fit(self, X: np.ndarray, y: Any = None) -> "QuantileBinner":
        X = np.asarray(X, dtype=np.float64)
        q = np.quantile(X, np.linspace(0, 1, self.n_bins + 1)[1:-1], axis=0)  # (n_bins - 1, F)
        self.thresholds_ = [np.unique(q[:, j]) for j in range(X.shape[1])]
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"QuantileBinner: {X.shape[1]} features, fitted on {self.n_features_in_}")
        out = np.empty(X.shape, dtype=np.float32)
        for j, t in enumerate(self.thresholds_):
            out[:, j] = np.searchsorted(t, X[:, j], side="left")
        return out


def build_estimator(kind: str, seed: int) -> Any:
    """Unfitted scikit-learn pipeline for `ModelConfig.features_model` ('hgb' or 'logreg'), seeded."""
    from sklearn.pipeline import make_pipeline

    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return make_pipeline(QuantileBinner(HGB_BINS), HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20, l2_regularization=1.0,
            max_bins=HGB_BINS, early_stopping=False, random_state=seed,
        ))
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=LOGREG_C, max_iter=3000, random_state=seed))
    raise ValueError(f"model.features_model: unknown {kind!r} (hgb, logreg)")


def expand_soft(X: np.ndarray, targets: np.ndarray, weights: np.ndarray, class_weights: Optional[Sequence[float]] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft targets → hard labels: X (N, F), targets (N, K), weights (N,) → (X', y', w') with one row per (row, class) of weight > 0.

    w' = target × row weight × class weight, scaled to sum N, so Σ w' · log p(y') is the soft cross-entropy.
    """
    N, K = targets.shape
    cw = np.ones(K) if class_weights is None else np.asarray(class_weights, dtype=np.float64)
    if cw.shape != (K,):
        raise ValueError(f"train.class_weights: {cw.size} values for {K} classes")
    w = targets.astype(np.float64) * np.asarray(weights, dtype=np.float64)[:, None] * cw[None, :]
    rows, ks = np.nonzero(w > 0)
    sw = w[rows, ks]
    if sw.size == 0:
        raise ValueError("no training row has a positive weight")
    sw = sw * (N / sw.sum())
    return X[rows], ks.astype(np.int64), sw


def fit_soft(kind: str, X: np.ndarray, targets: np.ndarray, weights: np.ndarray, seed: int, class_weights: Optional[Sequence[float]] = None) -> Any:
    """Fit a `build_estimator(kind, seed)` on soft targets (N, K) by sample expansion; returns the fitted estimator."""
    Xe, ye, we = expand_soft(X, targets, weights, class_weights)
    if len(np.unique(ye)) < 2:
        raise ValueError(f"only one class ({int(ye[0])}) has training weight; a classifier needs two")
    est = build_estimator(kind, seed)
    with _openmp_limit():
        if hasattr(est, "steps"):  # a Pipeline: route the weights to its last step
            est.fit(Xe, ye, **{f"{est.steps[-1][0]}__sample_weight": we})
        else:
            est.fit(Xe, ye, sample_weight=we)
    return est


def sklearn_threads() -> int:
    """OpenMP threads for gradient boosting: all usable cores but one (at least 1).

    OpenMP barriers spin-wait: with as many threads as cores, one busy core (a data loader,
    another process) makes HistGradientBoosting ten times slower or worse; measured on 2 cores.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, n - 1)


def _openmp_limit() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=sklearn_threads(), user_api="openmp")


def predict_proba(est: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities (N, n_classes) float64 in class-index order; a class absent from training gets PROB_FLOOR, rows renormalised."""
    with _openmp_limit():
        p = est.predict_proba(X)
    out = np.full((len(X), n_classes), PROB_FLOOR, dtype=np.float64)
    out[:, np.asarray(est.classes_, dtype=np.int64)] = p
    return out / out.sum(axis=1, keepdims=True)


def count_fitted(est: Any) -> int:
    """Size of a fitted pipeline: tree nodes (gradient boosting) or coefficients + scaler statistics (logistic regression)."""
    steps = [st for _, st in est.steps] if hasattr(est, "steps") else [est]
    n = 0
    for st in steps:
        preds = getattr(st, "_predictors", None)  # HGB: one list of trees per iteration
        if preds is not None:
            n += sum(len(t.nodes) for it in preds for t in it)
        elif hasattr(st, "coef_"):
            n += st.coef_.size + np.size(getattr(st, "intercept_", 0))
        elif hasattr(st, "mean_"):
            n += 2 * st.mean_.size
    return int(n)


# --------------------------------------------------------------------------- features of an experiment (stored once)


def _rows_key(table: pd.DataFrame, rows: np.ndarray, n: int) -> str:
    h = hashlib.sha256()
    h.update(table["sample_id"].astype(str).str.cat(sep="\n").encode())
    h.update(rows.astype(np.int64).tobytes())
    h.update(str(n).encode())
    return h.hexdigest()[:16]


def experiment_features(cfg: ExperimentConfig, cache: Any, sel: pd.DataFrame, progress: bool = True) -> tuple[np.ndarray, list[str]]:
    """(X (N, F) float32 for every selected row, feature names), read from `<output_dir>/features.npz` when it matches."""
    rows, n = _window_rows(cache, sel)
    names = extract_names(list(cache.channels), float(cache.fs), n / float(cache.fs))
    key = json.dumps({
        "version": FEATURES_VERSION, "cache": str(Path(cache.path).resolve()), "hash": cache.meta.get("hash"),
        "created": cache.meta.get("created"), "rows": _rows_key(sel, rows, n), "names": params_digest(names),
    }, sort_keys=True)
    path = cfg.output_dir() / "features.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    log.info("features: reusing %s (%d rows × %d features)", path, *z["X"].shape)
                    return z["X"], names
        except (OSError, ValueError, KeyError) as e:
            log.warning("features: ignoring unreadable %s (%s)", path, e)
        log.info("features: %s was computed for other rows or another cache; recomputing", path)
    t0 = time.time()
    X = extract(cache, sel, progress=progress)
    log.info("features: %d windows × %d features in %.0f s", X.shape[0], X.shape[1], time.time() - t0)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, X=X, key=np.array(key))
    return X, names


def params_digest(names: Sequence[str]) -> str:
    """Short hash of a list of names."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- one fold


def _flip_p(cfg: ExperimentConfig) -> float:
    return float(min(max(cfg.augment.hemisphere_flip, 0.0), 1.0))


def _proba_tta(est: Any, X: np.ndarray, names: list[str], channels: list[str], n_classes: int, tta_flip: bool) -> np.ndarray:
    p = predict_proba(est, X, n_classes)
    if tta_flip:
        p = 0.5 * (p + predict_proba(est, flip_features(X, names, channels), n_classes))
    return p


def train_features_fold(cfg: ExperimentConfig, fold: int, resume: bool = False, data: Any = None, progress: bool = True) -> pd.DataFrame:
    """Fit one fold's feature model; write fold{k}/best.pt, last.pt, history.csv, curve.png, oof.csv, fold.json; return its OOF."""
    from hbac.data import vote_columns
    from hbac.metrics import kl_score
    from hbac.train import _weights, experiment_table, fold_split, oof_frame, plot_history

    if cfg.model.kind != "features":
        raise ValueError(f"train_features_fold: model.kind is {cfg.model.kind!r}, not 'features'")
    cache, sel, folds = data if data is not None else experiment_table(cfg)
    tr, va = fold_split(cfg, sel, folds, fold)
    out = cfg.output_dir() / f"fold{fold}"
    out.mkdir(parents=True, exist_ok=True)
    last_path = out / "last.pt"
    if resume and last_path.exists():
        last = torch.load(last_path, map_location="cpu", weights_only=False)
        if last.get("complete") and (out / "oof.csv").exists():
            log.info("fold %d already complete (last.pt); nothing to resume", fold)
            return pd.read_csv(out / "oof.csv")
        log.info("fold %d: incomplete last.pt; refitting from scratch", fold)
    t0 = time.time()
    classes, channels, fs = list(cache.classes), list(cache.channels), float(cache.fs)
    vcols = vote_columns(va)
    if [c[: -len("_vote")] for c in vcols] != classes:
        raise ValueError(f"target columns {vcols} do not follow the cache's classes {classes}")
    n_times = int(round(float(va["duration_s"].iloc[0]) * fs))

    X, names = experiment_features(cfg, cache, sel, progress=progress)
    pos = pd.Index(sel["sample_id"])
    if not pos.is_unique:
        raise ValueError("selected rows have duplicate sample_id values; cannot map features to folds")
    Xtr, Xva = X[pos.get_indexer(tr["sample_id"])], X[pos.get_indexer(va["sample_id"])]
    ttr, tva = tr[vcols].to_numpy(np.float64), va[vcols].to_numpy(np.float64)
    wtr = _weights(cfg, tr).astype(np.float64)
    if cfg.train.sampler != "none":
        log.warning("fold %d: train.sampler %r is ignored by feature models (use train.class_weights)", fold, cfg.train.sampler)
    fp = _flip_p(cfg)
    if fp > 0:  # hemisphere-flip augmentation: mirrored copies, as the torch loader flips a fraction fp of rows
        Xfit = np.concatenate([Xtr, flip_features(Xtr, names, channels)])
        tfit = np.concatenate([ttr, ttr])
        wfit = np.concatenate([wtr * (1 - fp), wtr * fp])
    else:
        Xfit, tfit, wfit = Xtr, ttr, wtr
    seed = cfg.train.seed + fold
    log.info("fold %d: %d train rows, %d validation rows, %d features, %s", fold, len(tr), len(va), X.shape[1], cfg.model.features_model)

    tf = time.time()
    est = fit_soft(cfg.model.features_model, Xfit, tfit, wfit, seed, cfg.train.class_weights)
    train_kl = kl_score(ttr, predict_proba(est, Xtr, len(classes)))
    pva = predict_proba(est, Xva, len(classes))
    val_kl = kl_score(tva, pva)
    hi = va["n_votes"].to_numpy() >= 10
    val_kl_hi = kl_score(tva[hi], pva[hi]) if hi.any() else float("nan")
    n_params = count_fitted(est)
    history = pd.DataFrame([{
        "epoch": 1, "stage": "stage1", "epoch_in_stage": 1,
        "lr": float(getattr(est.steps[-1][1], "learning_rate", float("nan"))),
        "train_loss": train_kl, "val_kl": val_kl, "val_kl_min_votes": val_kl_hi, "time_s": time.time() - tf,
    }])
    ckpt: dict[str, Any] = {
        "kind": "features", "sklearn": est, "config": to_dict(cfg), "epoch": 1, "stage": "stage1", "score": val_kl,
        "fold": fold, "n_params": n_params, "classes": classes, "channels": channels, "fs": fs, "n_times": n_times,
        "feature_names": names, "features_version": FEATURES_VERSION,
    }
    _save(out / "best.pt", ckpt)
    atomic_write_csv(out / "history.csv", history)
    probs = _proba_tta(est, Xva, names, channels, len(classes), cfg.tta.hemisphere_flip)
    oof = oof_frame(va, probs, classes, fold)
    atomic_write_csv(out / "oof.csv", oof)
    elapsed = time.time() - t0
    atomic_write_json(out / "fold.json", {"fold": fold, "best_score": val_kl, "best_epoch": 1, "train_time_s": elapsed, "n_params": n_params})
    _save(last_path, {**ckpt, "elapsed_s": elapsed, "history": history.to_dict("records"), "complete": True})
    plot_history(history, out / "curve.png", title=f"{cfg.name} fold {fold}")
    log.info("fold %d done in %.0f s: train KL %.4f, val KL %.4f (n_votes>=10: %.4f), %s fitted parameters", fold, elapsed, train_kl, val_kl, val_kl_hi, f"{n_params:,}")
    return oof


def _save(path: Path, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# --------------------------------------------------------------------------- inference

_MEMO: dict[str, Any] = {}  # the last extraction, so the folds of one experiment share it


def predict_features(ckpt: dict[str, Any], cache: Any, table: pd.DataFrame, progress: bool = True) -> np.ndarray:
    """Probabilities (N, K) float64 of a feature checkpoint (`kind == "features"`) on a cache's rows."""
    if ckpt.get("kind") != "features":
        raise ValueError("predict_features: not a feature-model checkpoint (no kind 'features')")
    channels, fs = list(cache.channels), float(cache.fs)
    if channels != list(ckpt["channels"]) or abs(fs - float(ckpt["fs"])) > 1e-6:
        raise ValueError(
            f"the cache has channels {channels[:3]}… at {fs:g} Hz, the checkpoint was trained on {list(ckpt['channels'])[:3]}… at {float(ckpt['fs']):g} Hz"
        )
    K = len(ckpt["classes"])
    if len(table) == 0:
        return np.zeros((0, K))
    rows, n = _window_rows(cache, table)
    names = extract_names(channels, fs, n / fs)
    if names != list(ckpt["feature_names"]):
        raise ValueError(f"features differ from the checkpoint's ({len(names)} vs {len(ckpt['feature_names'])} columns): windows of {n / fs:g} s, version {FEATURES_VERSION} vs {ckpt.get('features_version')}")
    key = f"{Path(cache.path).resolve()}|{cache.meta.get('hash')}|{cache.meta.get('created')}|{_rows_key(table, rows, n)}"
    if _MEMO.get("key") != key:
        _MEMO.clear()
        _MEMO.update(key=key, X=extract(cache, table, progress=progress))
    tta = bool(ckpt["config"].get("tta", {}).get("hemisphere_flip", False))
    return _proba_tta(ckpt["sklearn"], _MEMO["X"], names, channels, K, tta)
