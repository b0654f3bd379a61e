"""The Task protocol: what a problem owns (classes, columns, metrics and their direction, OOF scoring).

Checkpoint selection (`best.pt`), the ensemble objective, the leaderboard ranking, `scores.json`
and `python -m hbac score` ask the task; no generic module names a dataset or branches on one.

Score dictionaries (from `Task.score_oof` and `Task.epoch_scores`) are strict-JSON-safe: an
undefined value is `None`, never NaN. Their keys are the task's metric names (`Task.metric`,
`Task.secondary`, the tie-breaks).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Literal, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

Direction = Literal["min", "max"]


def json_safe(obj: Any) -> Any:
    """A copy of `obj` that `json.dumps(..., allow_nan=False)` accepts: NaN/inf → None, numpy → Python."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj


def finite(v: Any) -> Optional[float]:
    """A finite number as float, anything else (None, NaN, inf, a string, a bool) as None."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


class Task(ABC):
    """One problem: its classes, target/prediction columns, metrics (with direction) and scoring.

    Subclasses set the class attributes and implement `score_oof`, `epoch_scores` and `fit_loss`.
    """

    name: str  # "hms" | "seizure": the value of scores.json "task"
    classes: tuple[str, ...]
    metric: str  # primary metric: a key of the score dicts
    direction: Direction  # "min": lower is better; "max": higher is better
    metric_label: str  # human name of the primary metric ("KL divergence", "event F1")
    secondary: tuple[str, ...] = ()  # further metrics reported beside the primary one
    tiebreak: tuple[tuple[str, Direction], ...] = ()  # metrics that break ties of the primary one, in order
    fit_label: str = "loss"  # name of the ensemble weight-fitting objective (`fit_loss`), lower is better
    labels: Mapping[str, str] = {}  # display names of metric keys ("kl" → "KL")
    event_class: Optional[str] = None  # the class whose probability becomes events (`detect`, `stream`); None: no events

    # ------------------------------------------------------------------ columns

    def vote_cols(self, classes: Optional[Sequence[str]] = None) -> list[str]:
        """`<class>_vote` target columns (the task's classes unless given)."""
        return [f"{c}_vote" for c in (self.classes if classes is None else classes)]

    def pred_cols(self, classes: Optional[Sequence[str]] = None) -> list[str]:
        """`<class>_pred` prediction columns (the task's classes unless given)."""
        return [f"{c}_pred" for c in (self.classes if classes is None else classes)]

    def check_classes(self, classes: Sequence[str], source: str = "data") -> None:
        """Raise ValueError naming `source` unless `classes` are this task's classes (in any order)."""
        if sorted(classes) != sorted(self.classes):
            raise ValueError(f"{source}: classes {list(classes)} do not match task '{self.name}' {list(self.classes)}")

    # ------------------------------------------------------------------ scoring

    @abstractmethod
    def score_oof(self, df: pd.DataFrame) -> dict[str, Any]:
        """Score an OOF table (`<class>_vote`, `<class>_pred`, ids, optional `fold`) → strict-JSON-safe dict.

        Holds `self.metric`, every `self.secondary` and tie-break metric, "n_rows", and per fold
        (when a `fold` column exists) "folds": {"<k>": {metric: value, ...}}.
        """

    @abstractmethod
    def epoch_scores(self, oof: pd.DataFrame) -> dict[str, Optional[float]]:
        """Per-epoch validation scores of one fold's OOF table: {metric: value or None}, primary included."""

    def oof_details(self, df: pd.DataFrame) -> dict[str, Any]:
        """Extra scores.json sections computed from an experiment's whole OOF table (default: none)."""
        return {}

    @abstractmethod
    def fit_loss(self, targets: np.ndarray, probs: np.ndarray) -> float:
        """Ensemble weight-fitting objective (lower is better): targets, probs (N, K) in class order."""

    def from_legacy(self, scores: Mapping[str, Any]) -> Optional[tuple[dict[str, Any], str]]:
        """A scores.json written before tasks existed ("task" = the dataset name), in the current layout with a note,
        if it is this task's; None otherwise (default: never)."""
        return None

    # ------------------------------------------------------------------ ranking

    def label(self, key: str) -> str:
        """Display name of a metric key (the key itself when the task has none)."""
        return self.labels.get(key, key)

    def better_word(self) -> str:
        return "lower is better" if self.direction == "min" else "higher is better"

    def rank_key(self, scores: Optional[Mapping[str, Any]], metric_key: Optional[str] = None) -> tuple[float, ...]:
        """Sort key, smallest = best: the primary metric (read from `metric_key` if given), then the tie-breaks.

        Missing or undefined values sort last.
        """
        scores = scores or {}
        keys: list[tuple[str, Direction]] = [(metric_key or self.metric, self.direction), *self.tiebreak]
        out = []
        for k, d in keys:
            v = finite(scores.get(k))
            out.append(math.inf if v is None else (v if d == "min" else -v))
        return tuple(out)

    def is_better(self, a: Optional[Mapping[str, Any]], b: Optional[Mapping[str, Any]]) -> bool:
        """True when scores `a` beat scores `b` (primary metric in its direction, then the tie-breaks).

        `a` without a defined primary metric is never better; anything defined beats `b` = None.
        """
        if a is None or finite(a.get(self.metric)) is None:
            return False
        return self.rank_key(a) < self.rank_key(b)

    # ------------------------------------------------------------------ wording

    def title(self, dataset: Optional[str] = None) -> str:
        """Leaderboard section title, e.g. 'chbmit: seizure (event F1, higher is better)'."""
        head = f"{dataset}: {self.name}" if dataset and dataset != self.name else self.name
        return f"{head} ({self.metric_label}, {self.better_word()})"

    def headline(self, scores: Mapping[str, Any]) -> str:
        """One line with the primary metric and the secondary ones, e.g. for the CLI and logs."""
        parts = [f"{self.label(k)} {fmt(scores.get(k))}" for k in (self.metric, *self.secondary)]
        return ", ".join(parts)

    def report_lines(self, scores: Mapping[str, Any]) -> list[str]:
        """`python -m hbac score` lines: every scalar of `scores` (primary metric first), then `fold<k>_<metric>`."""
        order = [self.metric, *self.secondary] + [k for k in scores if k not in (self.metric, *self.secondary)]
        lines = [f"{k:>20}: {fmt(scores.get(k), 5)}" for k in order if not isinstance(scores.get(k), (Mapping, list))]
        folds = scores.get("folds")
        for k, fs in (folds.items() if isinstance(folds, Mapping) else ()):
            lines += [f"{f'fold{k}_{m}':>20}: {fmt(v, 5)}" for m, v in fs.items() if not isinstance(v, (Mapping, list))]
        return lines


def fmt(v: Any, digits: int = 4) -> str:
    """A metric value for display: floats with `digits` decimals, None/NaN as 'n/a'."""
    if v is None:
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}" if math.isfinite(float(v)) else "n/a"
    return str(v)
