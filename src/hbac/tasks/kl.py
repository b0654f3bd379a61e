"""The HMS competition metric (KL divergence) and OOF scoring."""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import pandas as pd
from scipy.special import rel_entr

log = logging.getLogger(__name__)


KL_EPS = 1e-15  # the Kaggle metric's clip


SUM_TOL = 1e-3  # predictions of a row must sum to 1 within this


def kl_score(targets: np.ndarray, preds: np.ndarray, eps: float = KL_EPS) -> float:
    """Kaggle HMS metric: mean over rows of Σ_k t log(t / clip(p, eps, 1−eps)); t = 0 terms are 0.

    targets, preds: (N, K) probabilities. Predictions are clipped, not renormalised (as Kaggle does).
    """
    t = np.asarray(targets, dtype=np.float64)
    p = np.asarray(preds, dtype=np.float64)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"kl_score: targets {t.shape} and preds {p.shape} must both be (N, K)")
    if t.shape[0] == 0:
        raise ValueError("kl_score: no rows to score")
    p = np.clip(p, eps, 1.0 - eps)
    return float(rel_entr(t, p).sum(axis=1).mean())


def oof_classes(df: pd.DataFrame) -> list[str]:
    """Class names from the `<class>_vote` / `<class>_pred` column pairs, in `_vote` column order."""
    votes = [c[: -len("_vote")] for c in df.columns if c.endswith("_vote")]
    preds = [c[: -len("_pred")] for c in df.columns if c.endswith("_pred")]
    if not votes:
        raise KeyError("no '<class>_vote' target columns")
    for c in votes:
        if c not in preds:
            raise KeyError(f"column '{c}_pred' missing (there is '{c}_vote')")
    for c in preds:
        if c not in votes:
            raise KeyError(f"column '{c}_vote' missing (there is '{c}_pred')")
    return votes


def _row_name(df: pd.DataFrame, i: int) -> str:
    if "sample_id" in df.columns:
        return f"sample_id={df['sample_id'].iloc[i]!r}"
    return f"index {df.index[i]!r}"


def oof_arrays(df: pd.DataFrame, classes: Optional[list[str]] = None) -> tuple[np.ndarray, np.ndarray]:
    """(targets (N, K), preds (N, K)) float64 from an OOF table, validated: no NaN, predictions sum to 1."""
    classes = classes or oof_classes(df)
    t = df[[f"{c}_vote" for c in classes]].to_numpy(dtype=np.float64)
    p = df[[f"{c}_pred" for c in classes]].to_numpy(dtype=np.float64)
    for name, a in (("_vote", t), ("_pred", p)):
        bad = np.nonzero(~np.isfinite(a).all(axis=1))[0]
        if len(bad):
            raise ValueError(f"{len(bad)} rows have NaN/inf in '<class>{name}' columns, first: {_row_name(df, int(bad[0]))}")
    s = p.sum(axis=1)
    bad = np.nonzero(np.abs(s - 1.0) > SUM_TOL)[0]
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{len(bad)} rows have predictions not summing to 1 (±{SUM_TOL}), first: {_row_name(df, i)} sums to {s[i]:.6f}"
        )
    ts = t.sum(axis=1)
    n_off = int((np.abs(ts - 1.0) > SUM_TOL).sum())
    if n_off:
        log.warning("%d rows have targets not summing to 1; scored as given", n_off)
    return t, p


def _kl_subset(t: np.ndarray, p: np.ndarray, mask: np.ndarray) -> float:
    return kl_score(t[mask], p[mask]) if mask.any() else float("nan")


def score_oof(df: pd.DataFrame, min_votes: int = 10) -> dict[str, Any]:
    """Score an OOF table: {"kl", "kl_min_votes" (n_votes >= min_votes, NaN if none), "n_rows",
    "n_rows_min_votes", and "fold{k}_kl", "fold{k}_kl_min_votes" per fold when a `fold` column exists}."""
    if len(df) == 0:
        raise ValueError("OOF table has no rows")
    classes = oof_classes(df)
    if "n_votes" not in df.columns:
        raise KeyError("column 'n_votes' missing (needed for the min_votes subset)")
    t, p = oof_arrays(df, classes)
    votes = df["n_votes"].to_numpy(dtype=np.float64)
    hi = votes >= min_votes
    out: dict[str, Any] = {
        "kl": kl_score(t, p),
        "kl_min_votes": _kl_subset(t, p, hi),
        "n_rows": int(len(df)),
        "n_rows_min_votes": int(hi.sum()),
    }
    if "fold" in df.columns:
        folds = df["fold"].to_numpy()
        for k in sorted(pd.unique(df["fold"].dropna())):
            m = folds == k
            out[f"fold{int(k)}_kl"] = kl_score(t[m], p[m])
            out[f"fold{int(k)}_kl_min_votes"] = _kl_subset(t, p, m & hi)
    return out
