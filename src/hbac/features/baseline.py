"""The scikit-learn baseline on classic features: fit per fold on soft targets, predict."""
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
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hbac.config import ExperimentConfig, to_dict
from hbac.data.selection import vote_columns
from hbac.data.split import experiment_table, fold_split, sample_weights
from hbac.engine.checkpoint import load_checkpoint, save_checkpoint
from hbac.engine.outputs import oof_frame, write_fold_files
from hbac.engine.provenance import experiment_hash
from hbac.errors import CheckpointError
from hbac.features.extract import (
    FEATURES_VERSION,
    _window_rows,
    extract,
    extract_names,
    flip_features,
)
from hbac.io import atomic_path
from hbac.tasks import task_for

log = logging.getLogger(__name__)


HGB_BINS = 255  # features are quantised to this many levels before gradient boosting


LOGREG_C = 0.01  # inverse L2 strength on standardised features: hundreds of correlated features


PROB_FLOOR = 1e-4  # probability given to a class the model never saw in training


# Types a feature checkpoint may hold beyond skops' own safe list (numpy, scikit-learn's
# standard estimators): nothing else is ever constructed when one is loaded.
TRUSTED_TYPES = [
    "hbac.features.baseline.QuantileBinner",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]


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

    if kind == "hgb":

        return make_pipeline(QuantileBinner(HGB_BINS), HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20, l2_regularization=1.0,
            max_bins=HGB_BINS, early_stopping=False, random_state=seed,
        ))
    if kind == "logreg":

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
        "window_filter": getattr(cache, "window_filter", None),
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


def _flip_p(cfg: ExperimentConfig) -> float:
    return float(min(max(cfg.augment.hemisphere_flip, 0.0), 1.0))


def _proba_tta(est: Any, X: np.ndarray, names: list[str], channels: list[str], n_classes: int, tta_flip: bool) -> np.ndarray:
    p = predict_proba(est, X, n_classes)
    if tta_flip:
        p = 0.5 * (p + predict_proba(est, flip_features(X, names, channels), n_classes))
    return p


def train_features_fold(cfg: ExperimentConfig, fold: int, resume: bool = False, data: Any = None, progress: bool = True) -> pd.DataFrame:
    """Fit one fold's feature model; write fold{k}/best.pt, last.pt, history.csv, curve.png, oof.csv, fold.json; return its OOF."""

    if cfg.model.kind != "features":
        raise ValueError(f"train_features_fold: model.kind is {cfg.model.kind!r}, not 'features'")
    cache, sel, folds = data if data is not None else experiment_table(cfg)
    tr, va = fold_split(cfg, sel, folds, fold)
    out = cfg.output_dir() / f"fold{fold}"
    out.mkdir(parents=True, exist_ok=True)
    last_path = out / "last.pt"
    if resume and last_path.exists():
        last = load_checkpoint(last_path, map_location="cpu")
        if last.get("complete") and (out / "oof.csv").exists():
            log.info("fold %d already complete (last.pt); nothing to resume", fold)
            return pd.read_csv(out / "oof.csv")
        log.info("fold %d: incomplete last.pt; refitting from scratch", fold)
    t0 = time.time()
    classes, channels, fs = list(cache.classes), list(cache.channels), float(cache.fs)
    task = task_for(cfg, classes)
    vcols = vote_columns(va)
    if [c[: -len("_vote")] for c in vcols] != classes:
        raise ValueError(f"target columns {vcols} do not follow the cache's classes {classes}")
    n_times = int(round(float(va["duration_s"].iloc[0]) * fs))

    X, names = experiment_features(cfg, cache, sel, progress=progress)
    pos = pd.Index(sel["sample_id"])
    if not pos.is_unique:
        raise ValueError("selected rows have duplicate sample_id values; cannot map features to folds")
    tr_ids = tr["window_sample_id"] if "window_sample_id" in tr else tr["sample_id"]  # per_eeg: the window it sits at
    Xtr, Xva = X[pos.get_indexer(tr_ids)], X[pos.get_indexer(va["sample_id"])]
    ttr = tr[vcols].to_numpy(np.float64)
    wtr = sample_weights(cfg, tr).astype(np.float64)
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
    train_loss = task.fit_loss(ttr, predict_proba(est, Xtr, len(classes)))
    scores = task.epoch_scores(oof_frame(va, predict_proba(est, Xva, len(classes)), classes, fold))
    n_params = count_fitted(est)
    history = [{
        "epoch": 1, "stage": "stage1", "epoch_in_stage": 1,
        "lr": float(getattr(est.steps[-1][1], "learning_rate", float("nan"))),
        "train_loss": train_loss, **{f"val_{k}": (float("nan") if v is None else v) for k, v in scores.items()},
        "time_s": time.time() - tf,
    }]
    ckpt: dict[str, Any] = {
        "kind": "features", "sklearn": dump_estimator(est), "config": to_dict(cfg), "epoch": 1, "stage": "stage1",
        "score": scores.get(task.metric), "metric": task.metric, "scores": scores,
        "fold": fold, "n_params": n_params, "classes": classes, "channels": channels, "fs": fs, "n_times": n_times,
        "feature_names": names, "features_version": FEATURES_VERSION, "config_hash": experiment_hash(cfg),
    }
    save_checkpoint(out / "best.pt", ckpt)
    probs = _proba_tta(est, Xva, names, channels, len(classes), cfg.tta.hemisphere_flip)
    oof = oof_frame(va, probs, classes, fold)
    elapsed = time.time() - t0
    info = {"fold": fold, "best_score": scores.get(task.metric), "best_epoch": 1, "train_time_s": elapsed, "n_params": n_params,
            "config_hash": experiment_hash(cfg)}
    write_fold_files(out, task, history, oof, info, title=f"{cfg.name} fold {fold}")
    save_checkpoint(last_path, {**ckpt, "elapsed_s": elapsed, "history": history, "complete": True})
    log.info("fold %d done in %.0f s: train %s %.4f, val %s, %s fitted parameters", fold, elapsed, task.fit_label, train_loss,
             task.headline(scores), f"{n_params:,}")
    return oof


def dump_estimator(est: Any) -> torch.Tensor:
    """A fitted estimator as skops bytes in a (n_bytes,) uint8 tensor: loads with torch's weights_only."""
    # skops here and in `load_estimator`, not at the top: importing skops.io lists every scikit-learn estimator
    # (3 s), which only saving or loading a fitted estimator needs, not the modules that import this one
    import skops.io as sio

    return torch.frombuffer(bytearray(sio.dumps(est)), dtype=torch.uint8)


def load_estimator(ckpt: dict[str, Any], source: str = "checkpoint") -> Any:
    """The fitted estimator of a feature checkpoint; only numpy, scikit-learn and `TRUSTED_TYPES` are built."""
    blob = ckpt.get("sklearn")
    if not isinstance(blob, torch.Tensor) or blob.dtype != torch.uint8:
        raise CheckpointError(f"{source} is not a trusted checkpoint: its 'sklearn' entry is not a skops byte tensor")
    import skops.io as sio  # here: 3 s to import (see `dump_estimator`)

    data = blob.numpy().tobytes()
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise CheckpointError(f"{source} is not a trusted checkpoint: its estimator holds untrusted types {untrusted[:5]}")
    try:
        return sio.loads(data, trusted=TRUSTED_TYPES)
    except Exception as e:  # skops raises assorted errors on malformed archives: report the file
        raise CheckpointError(f"{source}: unreadable estimator in feature checkpoint: {type(e).__name__}: {e}") from None


_MEMO: dict[str, Any] = {}  # the last extraction, so the folds of one experiment share it


def predict_features(ckpt: dict[str, Any], cache: Any, table: pd.DataFrame, progress: bool = True, source: str = "checkpoint") -> np.ndarray:
    """Probabilities (N, K) float64 of a feature checkpoint (`kind == "features"`, read from file `source`) on a cache's rows."""
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
    return _proba_tta(load_estimator(ckpt, source), _MEMO["X"], names, channels, K, tta)
