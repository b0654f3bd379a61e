"""The HMS task: six expert-vote classes, soft targets, KL divergence (lower is better)."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from hbac.datasets.hms import HMS_CLASSES
from hbac.tasks.base import Task, json_safe
from hbac.tasks.kl import kl_score, oof_arrays, score_oof


class HmsTask(Task):
    """Six-class soft-label classification scored by the Kaggle KL divergence, also on rows with n_votes ≥ min_votes."""

    name = "hms"
    classes = tuple(HMS_CLASSES)
    metric = "kl"
    direction = "min"
    metric_label = "KL divergence"
    secondary = ("kl_min_votes",)
    fit_label = "KL"

    def __init__(self, min_votes: int = 10) -> None:
        self.min_votes = int(min_votes)
        self.labels = {"kl": "KL", "kl_min_votes": f"KL (n_votes >= {self.min_votes})"}

    def from_legacy(self, scores: Mapping[str, Any]) -> Optional[tuple[dict[str, Any], str]]:
        """Old files scored every dataset by KL ("cv"): one with metric KL (or none) is this task's."""
        if scores.get("metric") not in (None, "kl"):
            return None
        return {**scores, "task": self.name}, ""

    def score_oof(self, df: pd.DataFrame) -> dict[str, Any]:
        """{"kl", "kl_min_votes", "n_rows", "n_rows_min_votes", "folds": {"<k>": {"kl", "kl_min_votes"}}} (None if undefined)."""
        s = score_oof(df, min_votes=self.min_votes)
        out: dict[str, Any] = {k: s[k] for k in ("kl", "kl_min_votes", "n_rows", "n_rows_min_votes")}
        if "fold" in df.columns:
            out["folds"] = {
                str(int(k)): {"kl": s[f"fold{int(k)}_kl"], "kl_min_votes": s[f"fold{int(k)}_kl_min_votes"]}
                for k in sorted(pd.unique(df["fold"].dropna()))
            }
        return json_safe(out)

    def epoch_scores(self, oof: pd.DataFrame) -> dict[str, Optional[float]]:
        """KL of one fold's validation rows, all and n_votes ≥ min_votes."""
        t, p = oof_arrays(oof, list(self.classes))
        hi = oof["n_votes"].to_numpy() >= self.min_votes
        return json_safe({"kl": kl_score(t, p), "kl_min_votes": kl_score(t[hi], p[hi]) if hi.any() else None})

    def fit_loss(self, targets: np.ndarray, probs: np.ndarray) -> float:
        """The KL metric itself."""
        return kl_score(targets, probs)
