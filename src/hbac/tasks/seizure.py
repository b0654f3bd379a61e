"""The seizure task: two classes [background, seizure]; event F1 at the chosen threshold (higher is better),
ties broken by window AUROC; window AUROC/AUPRC, event sensitivity, precision and FP/24 h reported beside it.

The threshold is fixed when the task is made with one, else chosen on the scored table itself
(the event-F1-best of 0.05 … 0.95, `events.seizure_scores(find_best=True)`); `detect` defaults to it.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from hbac.tasks.base import Task, json_safe
from hbac.tasks.events import seizure_scores, tune_postprocessing
from hbac.tasks.kl import KL_EPS, oof_arrays

METRICS = ("event_f1", "auroc", "auprc", "event_sensitivity", "event_precision", "fp_per_24h", "threshold")


class SeizureTask(Task):
    """Binary seizure detection on windows, scored as events (any-overlap) and as windows."""

    name = "seizure"
    classes = ("background", "seizure")
    metric = "event_f1"
    direction = "max"
    metric_label = "event F1"
    secondary = ("auroc", "auprc", "event_sensitivity", "event_precision", "fp_per_24h", "threshold")
    tiebreak = (("auroc", "max"),)
    fit_label = "log loss"
    event_class = "seizure"
    labels = {
        "event_f1": "event F1", "auroc": "AUROC", "auprc": "AUPRC", "event_sensitivity": "sensitivity",
        "event_precision": "precision", "fp_per_24h": "FP/24h", "threshold": "threshold",
    }

    def __init__(self, threshold: Optional[float] = None) -> None:
        if threshold is not None and not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"seizure threshold must be in (0, 1), got {threshold}")
        self.threshold = None if threshold is None else float(threshold)

    def _scores(self, df: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
        """(task metrics at the chosen threshold, the full `seizure_scores` detail)."""
        if self.threshold is None:
            s = seizure_scores(df.drop(columns="fold", errors="ignore"), find_best=True)
            thr, ev = s["best_threshold"], s["best_event"]
        else:
            s = seizure_scores(df.drop(columns="fold", errors="ignore"), threshold=self.threshold)
            thr, ev = self.threshold, s["event"]
        m = {
            "event_f1": ev["f1"], "auroc": s["auroc"], "auprc": s["auprc"], "event_sensitivity": ev["sensitivity"],
            "event_precision": ev["precision"], "fp_per_24h": ev["fp_per_24h"], "threshold": thr,
        }
        return m, s

    def score_oof(self, df: pd.DataFrame) -> dict[str, Any]:
        """Task metrics (see METRICS) at the chosen threshold, "n_rows", "seizure" (the full detail), and
        per fold the same metrics at that threshold under "folds"."""
        if len(df) == 0:
            raise ValueError("OOF table has no rows")
        oof_arrays(df, list(self.classes))  # same checks as the KL scorer: finite, predictions sum to 1
        m, detail = self._scores(df)
        out: dict[str, Any] = {**m, "n_rows": int(len(df)), "seizure": detail}
        if "fold" in df.columns:
            fixed = SeizureTask(threshold=m["threshold"])
            out["folds"] = {str(int(k)): fixed._scores(g)[0] for k, g in df.groupby("fold", sort=True)}
        return json_safe(out)

    def epoch_scores(self, oof: pd.DataFrame) -> dict[str, Optional[float]]:
        """The task metrics of one fold's validation rows (threshold chosen on them unless fixed)."""
        return json_safe(self._scores(oof)[0])

    def oof_details(self, df: pd.DataFrame) -> dict[str, Any]:
        """"postprocessing": smoothing, threshold, minimum duration and merging gap chosen on the OOF predictions
        (`events.tune_postprocessing`), what `detect` uses."""
        return {"postprocessing": json_safe(tune_postprocessing(df))}

    def from_legacy(self, scores: Mapping[str, Any]) -> Optional[tuple[dict[str, Any], str]]:
        """Old files held the seizure scores in a "seizure" section (event F1 at its best threshold): read them."""
        sz = scores.get("seizure")
        if not isinstance(sz, dict):
            return None
        ev = sz.get("best_event") if isinstance(sz.get("best_event"), dict) else {}
        out = dict(scores, task=self.name, metric=self.metric, cv=ev.get("f1"), auroc=sz.get("auroc"), auprc=sz.get("auprc"),
                   event_sensitivity=ev.get("sensitivity"), event_precision=ev.get("precision"),
                   fp_per_24h=ev.get("fp_per_24h"), threshold=sz.get("best_threshold"), folds={})
        return out, "" if ev else "old scores.json without seizure event scores: re-score with `train --resume`"

    def fit_loss(self, targets: np.ndarray, probs: np.ndarray) -> float:
        """Binary log loss of P(seizure) against the soft seizure target (a proper scoring rule)."""
        k = self.classes.index("seizure")
        t = np.asarray(targets, dtype=np.float64)[:, k]
        p = np.clip(np.asarray(probs, dtype=np.float64)[:, k], KL_EPS, 1.0 - KL_EPS)
        return float(-np.mean(t * np.log(p) + (1.0 - t) * np.log1p(-p)))
