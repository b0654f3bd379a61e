"""Optimal samples: per class, the validation windows the model is surest of and right about, and its surest mistakes.

Read from the OOF table (`<class>_vote` targets, `<class>_pred` probabilities): a row is *right*
for class c when both the vote argmax and the prediction argmax are c; a *mistake* for c when the
model's argmax is c and the votes' is not. Each list is sorted by the predicted probability of c,
highest first (ties by table order).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

KINDS = ("best", "mistake")


def optimal_samples(oof: pd.DataFrame, classes: Sequence[str], k: int, only: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Top-k rows per class and kind: columns kind, class, rank (1…k), row (position in `oof`), sample_id, prob, true, pred."""
    if k < 1:
        raise ValueError(f"--samples must be >= 1, got {k}")
    classes = list(classes)
    unknown = [c for c in (only or []) if c not in classes]
    if unknown:
        raise ValueError(f"--classes: unknown class {unknown[0]!r} (classes: {', '.join(classes)})")
    t = oof[[f"{c}_vote" for c in classes]].to_numpy(np.float64)
    p = oof[[f"{c}_pred" for c in classes]].to_numpy(np.float64)
    true, pred = t.argmax(axis=1), p.argmax(axis=1)
    labelled = t.sum(axis=1) > 0
    rows = []
    for ci, c in enumerate(classes):
        if only and c not in only:
            continue
        for kind in KINDS:
            mask = (pred == ci) & labelled & ((true == ci) if kind == "best" else (true != ci))
            idx = np.nonzero(mask)[0]
            idx = idx[np.argsort(-p[idx, ci], kind="stable")][:k]
            for r, i in enumerate(idx):
                rows.append({"kind": kind, "class": c, "rank": r + 1, "row": int(i), "sample_id": oof["sample_id"].iloc[i],
                             "prob": float(p[i, ci]), "true": classes[true[i]], "pred": classes[pred[i]]})
    return pd.DataFrame(rows, columns=["kind", "class", "rank", "row", "sample_id", "prob", "true", "pred"])


def top_predicted(probs: np.ndarray, classes: Sequence[str], k: int) -> pd.DataFrame:
    """Unlabelled windows (e.g. one EDF): per class the k rows with the highest predicted probability (kind 'top')."""
    rows = []
    for ci, c in enumerate(classes):
        for r, i in enumerate(np.argsort(-probs[:, ci], kind="stable")[:k]):
            rows.append({"kind": "top", "class": c, "rank": r + 1, "row": int(i), "prob": float(probs[i, ci])})
    return pd.DataFrame(rows)
