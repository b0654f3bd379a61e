"""Pseudo-labels: low-vote training rows learn from a teacher's out-of-fold predictions (`train.pseudo`).

A row with few expert votes (n_votes <= `max_votes`) has a noisy target; the top HMS solutions
replaced or blended it with an ensemble's prediction. Here the target becomes
(1 - weight) · votes + weight · prediction, where the prediction is the teacher's **out-of-fold**
prediction for that very row (an `oof.csv` of an experiment or an ensemble, trained on the same folds).

Why out-of-fold predictions do not leak a row's own label: the teacher's prediction for a row in
fold j comes from the teacher model of fold j, which never trained on fold j, so no row's target
is built from a model that saw that row's votes. Validation rows keep their expert votes (only
training rows are relabelled), so the score is still measured against the experts. What remains
is second order: the teacher of fold j trained on the other folds — including the fold k this
student is validated on — so CV with pseudo-labels can be slightly optimistic; the submission is
unaffected. The teacher must have been validated on the same folds (checked: an error otherwise).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hbac.config import PseudoConfig
from hbac.data.selection import vote_columns

log = logging.getLogger(__name__)


def _keys(s: pd.Series) -> np.ndarray:
    return s.astype(str).to_numpy()


def read_teacher(path: str | Path, classes: list[str]) -> pd.DataFrame:
    """The teacher's OOF file: sample_id, recording_id (optional), fold, `<class>_pred` renormalised to sum to 1."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train.pseudo.source: OOF file not found: {path}")
    df = pd.read_csv(path)
    need = ["sample_id", "fold"] + [f"{c}_pred" for c in classes]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"train.pseudo.source: {path} lacks column(s) {missing} (an oof.csv of an experiment or ensemble)")
    pred = df[[f"{c}_pred" for c in classes]].to_numpy(np.float64, copy=True)
    if not np.isfinite(pred).all() or (pred < 0).any():
        raise ValueError(f"train.pseudo.source: {path} holds negative or non-finite predictions")
    df[[f"{c}_pred" for c in classes]] = pred / pred.sum(axis=1, keepdims=True).clip(1e-12)
    return df


def teacher_predictions(rows: pd.DataFrame, teacher: pd.DataFrame, classes: list[str], source: str) -> np.ndarray:
    """(len(rows), K) teacher prediction per row (NaN where it has none): by sample_id, else the mean over the row's recording."""
    pcols = [f"{c}_pred" for c in classes]
    by_id = teacher.drop_duplicates("sample_id").set_index(pd.Index(_keys(teacher.drop_duplicates("sample_id")["sample_id"])))
    idx = by_id.index.get_indexer(_keys(rows["sample_id"]))
    out = np.full((len(rows), len(classes)), np.nan)
    hit = idx >= 0
    out[hit] = by_id[pcols].to_numpy()[idx[hit]]
    if hit.any() and "fold" in rows:
        theirs = by_id["fold"].to_numpy()[idx[hit]].astype(int)
        ours = rows["fold"].to_numpy()[hit].astype(int)
        if (theirs != ours).any():
            i = int(np.flatnonzero(theirs != ours)[0])
            sid = str(rows["sample_id"].to_numpy()[hit][i])
            raise ValueError(
                f"train.pseudo.source: {source} was validated on other folds (sample {sid}: fold {theirs[i]} there, "
                f"{ours[i]} here); train the teacher on this experiment's fold file"
            )
    if (~hit).any() and "recording_id" in teacher and "recording_id" in rows:
        # per_eeg rows stand for a whole recording: its labelled windows' mean prediction
        rec_mean = teacher.groupby(_keys(teacher["recording_id"]))[pcols].mean()
        ridx = rec_mean.index.get_indexer(_keys(rows["recording_id"]))
        fill = ~hit & (ridx >= 0)
        out[fill] = rec_mean.to_numpy()[ridx[fill]]
    return out


def apply_pseudo_labels(cfg: PseudoConfig, rows: pd.DataFrame) -> pd.DataFrame:
    """Copy of training `rows` whose low-vote targets are blended with the teacher's OOF predictions."""
    vcols = vote_columns(rows)
    classes = [c[: -len("_vote")] for c in vcols]
    teacher = read_teacher(cfg.source, classes)
    pred = teacher_predictions(rows, teacher, classes, cfg.source)
    low = rows["n_votes"].to_numpy() <= cfg.max_votes
    use = low & np.isfinite(pred).all(axis=1)
    if low.any() and not use.any():
        raise ValueError(f"train.pseudo.source: {cfg.source} has no prediction for any of the {int(low.sum())} low-vote training rows (other data?)")
    out = rows.copy()
    t = out[vcols].to_numpy(np.float64, copy=True)
    t[use] = (1 - cfg.weight) * t[use] + cfg.weight * pred[use]
    out[vcols] = t / t.sum(axis=1, keepdims=True).clip(1e-12)
    log.info(
        "pseudo-labels from %s: %d of %d training rows (n_votes <= %d, %d without a prediction) blended at weight %.2f",
        cfg.source, int(use.sum()), len(rows), cfg.max_votes, int((low & ~use).sum()), cfg.weight,
    )
    return out
