"""Permutation feature importance for the scikit-learn feature baseline (`model.kind: features`).

Each feature column of the validation rows is shuffled in turn (the rows keep everything
else) and the increase of the task's loss (KL, or the seizure log-loss, which is the same
formula on two classes) is that feature's importance; features are also grouped by family
(the name before '@', e.g. `logpow_delta`) by shuffling the whole family at once.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hbac.features.baseline import predict_proba
from hbac.plotting import subplots
from hbac.tasks.kl import kl_score

log = logging.getLogger(__name__)


def family(name: str) -> str:
    """Feature family: `logpow_delta@Fp1-F7` → `logpow_delta`; `asym_alpha@…` → `asym_alpha`."""
    return name.split("@", 1)[0]


def permutation_importance(est: Any, X: np.ndarray, t: np.ndarray, names: Sequence[str], seed: int = 0,
                           progress: bool = True) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    """(base KL, per-feature table, per-family table): columns name, importance (KL increase), sorted highest first."""
    rng = np.random.default_rng(seed)
    k = t.shape[1]
    base = kl_score(t, predict_proba(est, X, k))
    perm = rng.permutation(len(X))

    def shuffled_kl(cols: Sequence[int]) -> float:
        Xp = X.copy()
        Xp[:, cols] = X[perm][:, cols]
        return kl_score(t, predict_proba(est, Xp, k)) - base

    feats = [{"name": n, "importance": shuffled_kl([j])} for j, n in enumerate(tqdm(names, desc="permutation importance", leave=False, disable=not progress))]
    fams: dict[str, list[int]] = {}
    for j, n in enumerate(names):
        fams.setdefault(family(n), []).append(j)
    groups = [{"name": f, "importance": shuffled_kl(cols), "n_features": len(cols)} for f, cols in fams.items()]
    by = lambda rows: pd.DataFrame(rows).sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)  # noqa: E731
    return base, by(feats), by(groups)


def plot_importance(feats: pd.DataFrame, groups: pd.DataFrame, base: float, top: int = 25) -> Any:
    """Two bar charts: the top features and the top feature families by KL increase when shuffled."""
    fig, (a1, a2) = subplots(1, 2, figsize=(14, 0.28 * top + 1.5))
    for ax, d, ttl in ((a1, feats.head(top), "features"), (a2, groups.head(top), "feature families")):
        ax.barh(d["name"][::-1], d["importance"][::-1], color="tab:cyan")
        ax.set_xlabel("KL increase when shuffled")
        ax.set_title(f"permutation importance: top {ttl} (base KL {base:.4f})", fontsize=9)
        ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
    return fig
