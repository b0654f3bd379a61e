"""OOF blending: align members' out-of-fold predictions, fit simplex weights on KL, write the blend.

An ensemble's output folder looks like an experiment's (`oof.csv`, `scores.json`,
`config.yaml`) plus `weights.json`, so the leaderboard, `score` and `submit.py` treat
both alike, and an ensemble can itself be a member of another ensemble.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from hbac.config import EnsembleConfig, config_kind, read_yaml, save_config
from hbac.engine.outputs import score_table, write_scores
from hbac.engine.provenance import check_experiment
from hbac.errors import AlignmentError
from hbac.io import (
    atomic_dir,
    atomic_write_csv,
    atomic_write_json,
    clean_stale_temps,
    read_json,
)
from hbac.tasks import Task, task_from_classes, task_names
from hbac.tasks.base import fmt
from hbac.tasks.kl import kl_score
from hbac.tasks.kl import oof_classes as _classes

log = logging.getLogger(__name__)

EPS = 1e-15  # the Kaggle metric clips predictions to [EPS, 1 - EPS]
TARGET_TOL = 1e-6  # members' targets must agree to this absolute tolerance
SUM_TOL = 1e-3  # a member's probabilities must sum to 1 within this (as hbac.metrics requires)


# --------------------------------------------------------------------------- loading


def _examples(values: Sequence[Any], n: int = 5) -> str:
    """Up to `n` values, comma-separated, with '…' when there are more."""
    vals = list(values)
    s = ", ".join(str(v) for v in vals[:n])
    return s + (", …" if len(vals) > n else "")


def oof_classes(df: pd.DataFrame, source: str = "OOF") -> list[str]:
    """Class names from the `<class>_vote` / `<class>_pred` column pairs; errors name `source`."""

    try:
        return _classes(df)
    except KeyError as e:
        raise KeyError(f"{source}: {e.args[0]}") from None


def load_member_oof(outputs_root: Path, name: str) -> pd.DataFrame:
    """Read and check `outputs/<name>/oof.csv` (ids, fold, n_votes, `<class>_vote`, `<class>_pred`)."""
    path = Path(outputs_root) / name / "oof.csv"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: member '{name}' has no OOF predictions yet; "
            f"train it first with `python -m hbac train CONFIG` (its config's name must be '{name}')"
        )
    check_experiment(path.parent)  # all its folds from one config
    df = pd.read_csv(path)
    for col in ("sample_id", "fold", "n_votes"):
        if col not in df.columns:
            raise KeyError(f"{path}: required column '{col}' is missing")
    if len(df) == 0:
        raise ValueError(f"{path}: no rows")
    classes = oof_classes(df, str(path))
    dup = df["sample_id"].duplicated(keep=False)
    if dup.any():
        ids = df.loc[dup, "sample_id"].unique()
        raise ValueError(f"{path}: {len(ids)} sample_id value(s) occur more than once (e.g. {_examples(ids)})")
    for col in [f"{c}_pred" for c in classes] + [f"{c}_vote" for c in classes] + ["fold", "n_votes"]:
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path}: column '{col}' has {int(bad.sum())} missing or non-numeric value(s) "
                f"(first at data row {i}, sample_id {df['sample_id'].iloc[i]})"
            )
    preds = df[[f"{c}_pred" for c in classes]].to_numpy(np.float64)
    neg = (preds < 0).any(axis=1)
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise ValueError(f"{path}: {int(neg.sum())} row(s) have negative probabilities (first: sample_id {df['sample_id'].iloc[i]})")
    sums = preds.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOL
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{path}: {int(off.sum())} row(s) have '<class>_pred' not summing to 1 "
            f"(first: sample_id {df['sample_id'].iloc[i]} sums to {sums[i]:.6f})"
        )
    df["fold"] = df["fold"].astype(int)
    return df


def _read_scores(outputs_root: Path, name: str) -> dict[str, Any]:
    """A member's scores.json, or {} (with a warning) when absent or unreadable."""
    path = Path(outputs_root) / name / "scores.json"
    if not path.exists():
        log.warning("%s not found; member '%s' contributes no n_params / train time", path, name)
        return {}
    try:
        s = read_json(path)
    except (OSError, ValueError) as e:
        log.warning("%s is unreadable (%s); ignored", path, e)
        return {}
    if not isinstance(s, dict):
        log.warning("%s is not a JSON object; ignored", path)
        return {}
    return s


# --------------------------------------------------------------------------- alignment


def align_oofs(oofs: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Check members cover the same rows/folds/classes/targets; return (base table, {name: (N, K) preds}).

    Rows are matched by `sample_id` (order may differ between members); the base table keeps
    the first member's row order and its non-prediction columns (ids, fold, n_votes, targets).
    """
    if not oofs:
        raise ValueError("align_oofs: no members given")
    names = list(oofs)
    ref_name = names[0]
    ref = oofs[ref_name]
    classes = oof_classes(ref, f"member '{ref_name}'")
    vcols = [f"{c}_vote" for c in classes]
    pcols = [f"{c}_pred" for c in classes]
    ref_ids = pd.Index(ref["sample_id"])
    if ref_ids.has_duplicates:
        raise AlignmentError(f"member '{ref_name}' has duplicate sample_id values (e.g. {_examples(ref_ids[ref_ids.duplicated()].unique())})")
    ref_fold = ref["fold"].to_numpy()
    ref_votes = ref["n_votes"].to_numpy(np.float64)
    ref_t = ref[vcols].to_numpy(np.float64)

    preds: dict[str, np.ndarray] = {ref_name: ref[pcols].to_numpy(np.float64)}
    for name in names[1:]:
        df = oofs[name]
        cls = oof_classes(df, f"member '{name}'")
        if set(cls) != set(classes) or len(cls) != len(classes):
            raise AlignmentError(f"member '{name}' has classes {cls} but '{ref_name}' has {classes}")
        ids = pd.Index(df["sample_id"])
        if ids.has_duplicates:
            raise AlignmentError(f"member '{name}' has duplicate sample_id values (e.g. {_examples(ids[ids.duplicated()].unique())})")
        extra = ids.difference(ref_ids, sort=False)
        if len(extra):
            raise AlignmentError(f"member '{name}' has {len(extra)} rows not in '{ref_name}' (e.g. sample_id {_examples(extra)})")
        lacking = ref_ids.difference(ids, sort=False)
        if len(lacking):
            raise AlignmentError(f"member '{name}' lacks {len(lacking)} rows of '{ref_name}' (e.g. sample_id {_examples(lacking)})")
        pos = ids.get_indexer(ref_ids)  # row of `df` holding each reference row

        fold = df["fold"].to_numpy()[pos]
        bad = np.flatnonzero(fold != ref_fold)
        if len(bad):
            i = bad[0]
            raise AlignmentError(
                f"member '{name}' puts {len(bad)} rows in a different fold from '{ref_name}': "
                f"sample_id {ref_ids[i]} is in fold {ref_fold[i]} for '{ref_name}' but fold {fold[i]} for '{name}'"
            )
        votes = df["n_votes"].to_numpy(np.float64)[pos]
        bad = np.flatnonzero(np.abs(votes - ref_votes) > TARGET_TOL)
        if len(bad):
            i = bad[0]
            raise AlignmentError(
                f"member '{name}' has different n_votes from '{ref_name}' on {len(bad)} rows: "
                f"sample_id {ref_ids[i]} has n_votes {ref_votes[i]:g} for '{ref_name}' but {votes[i]:g} for '{name}'"
            )
        t = df[vcols].to_numpy(np.float64)[pos]
        diff = np.abs(t - ref_t)
        bad_rows = np.flatnonzero((diff > TARGET_TOL).any(axis=1))
        if len(bad_rows):
            i = bad_rows[0]
            k = int(np.argmax(diff[i]))
            raise AlignmentError(
                f"member '{name}' has different targets from '{ref_name}' on {len(bad_rows)} rows "
                f"(max abs difference {diff.max():.3g}): sample_id {ref_ids[i]} has {vcols[k]} "
                f"{ref_t[i, k]:.6g} for '{ref_name}' but {t[i, k]:.6g} for '{name}'"
            )
        preds[name] = df[pcols].to_numpy(np.float64)[pos]

    base = ref[[c for c in ref.columns if not c.endswith("_pred")]].reset_index(drop=True)
    return base, preds


# --------------------------------------------------------------------------- weights


def blend(preds: Sequence[np.ndarray], weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Weighted average of member probabilities: preds M × (N, K), weights (M,) ≥ 0 → (N, K)."""
    if len(preds) == 0:
        raise ValueError("blend: no member predictions")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(preds):
        raise ValueError(f"blend: {len(w)} weights for {len(preds)} members")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"blend: weights must be finite, non-negative and not all zero, got {w.tolist()}")
    shape = np.shape(preds[0])
    for i, p in enumerate(preds):
        if np.shape(p) != shape:
            raise ValueError(f"blend: member {i} predictions have shape {np.shape(p)}, member 0 has {shape}")
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in preds])  # (M, N, K)
    return np.tensordot(w / w.sum(), stacked, axes=1)


def _cross_entropy(w: np.ndarray, t: np.ndarray, p: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over rows of −Σ t·log(clip(Σ_m w_m p_m)) and its gradient in w; t (N, K), p (M, N, K).

    Differs from the KL metric by the constant Σ t·log t, so it has the same minimiser.
    """
    q = np.tensordot(w, p, axes=1)
    qc = np.clip(q, EPS, 1 - EPS)
    n = t.shape[0]
    loss = -float(np.sum(t * np.log(qc))) / n
    inside = (q > EPS) & (q < 1 - EPS)  # the clip has zero gradient
    r = np.where(inside, t / qc, 0.0)
    grad = -np.einsum("mnk,nk->m", p, r) / n
    return loss, grad


def _project(w: np.ndarray) -> np.ndarray:
    """Clip to ≥ 0 and renormalise to sum 1."""
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    s = w.sum()
    return w / s if s > 0 else np.full(len(w), 1.0 / len(w))


def fit_weights(targets: np.ndarray, preds: Sequence[np.ndarray], mask: Optional[np.ndarray] = None,
                objective: Callable[[np.ndarray, np.ndarray], float] = kl_score) -> np.ndarray:
    """Non-negative weights summing to 1 minimising `objective(targets, blend)` (default KL; a task's
    `fit_loss`): targets (N, K), preds M × (N, K).

    SLSQP on the simplex (on the cross-entropy, whose minimiser is KL's and, for two classes, the
    binary log loss's) from the uniform point and every vertex; the candidate with the best
    `objective` wins, and it is never worse than the best single member (every one-hot and the
    uniform blend are candidates too).
    """

    t = np.asarray(targets, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"fit_weights: targets must be (N, K), got shape {t.shape}")
    m = len(preds)
    if m == 0:
        raise ValueError("fit_weights: no member predictions")
    p = np.stack([np.asarray(x, dtype=np.float64) for x in preds])
    if p.shape[1:] != t.shape:
        bad = next(i for i, x in enumerate(preds) if np.shape(x) != t.shape)
        raise ValueError(f"fit_weights: member {bad} predictions have shape {np.shape(preds[bad])}, targets {t.shape}")
    if not np.isfinite(p).all():
        bad = int(np.flatnonzero(~np.isfinite(p).reshape(m, -1).all(axis=1))[0])
        raise ValueError(f"fit_weights: member {bad} predictions contain NaN or inf")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (t.shape[0],):
            raise ValueError(f"fit_weights: mask has shape {mask.shape}, expected ({t.shape[0]},)")
        t, p = t[mask], p[:, mask]
    if t.shape[0] == 0:
        raise ValueError("fit_weights: no rows to fit on (mask selects none)")
    if m == 1:
        return np.ones(1)

    def score(w: np.ndarray) -> float:
        return objective(t, np.tensordot(w, p, axes=1))

    eye = np.eye(m)
    starts = [np.full(m, 1.0 / m)] + list(eye)
    cons = [{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}]
    candidates: list[np.ndarray] = []
    for x0 in starts:
        res = minimize(
            _cross_entropy, x0, args=(t, p), jac=True, method="SLSQP",
            bounds=[(0.0, 1.0)] * m, constraints=cons, options={"maxiter": 500, "ftol": 1e-12},
        )
        w = _project(res.x)
        cleaned = _project(np.where(w < 1e-6, 0.0, w))  # drop numerically-zero weights
        candidates += [cleaned, w]
    candidates += [np.full(m, 1.0 / m)]
    scores = np.array([score(w) for w in candidates])
    best = candidates[int(np.argmin(scores))]
    single = np.array([score(e) for e in eye])
    if score(best) > single.min():  # guarantee: never worse than the best member alone
        best = eye[int(np.argmin(single))].copy()
    log.debug("fit_weights: blend objective %.6f, best single %.6f, weights %s", score(best), single.min(), np.round(best, 4))
    return best


# --------------------------------------------------------------------------- run


def _task_and_dataset(member_scores: dict[str, dict[str, Any]], classes: list[str]) -> tuple[Task, str]:
    """The members' task (from their classes) and common dataset (from their scores.json)."""
    task = task_from_classes(classes)
    datasets = {}
    for n, s in member_scores.items():
        d = s.get("dataset") or (s.get("task") if s.get("task") not in task_names() else None)  # older files: task = dataset
        if isinstance(d, str):
            datasets[n] = d
    if len(set(datasets.values())) > 1:
        raise AlignmentError(f"members are from different datasets: {datasets}")
    return task, next(iter(datasets.values()), task.name)


def _check_output_dir(cfg: EnsembleConfig) -> Path:
    """Refuse to write an ensemble over an experiment's folder or over one of its own members."""
    if cfg.name in cfg.members:
        raise ValueError(f"ensemble '{cfg.name}' lists itself as a member; give the ensemble its own name")
    dup = sorted({n for n in cfg.members if cfg.members.count(n) > 1})
    if dup:
        raise ValueError(f"ensemble '{cfg.name}': member(s) listed more than once: {', '.join(dup)}")
    out = cfg.output_dir()
    cfg_path = out / "config.yaml"
    if cfg_path.exists() and config_kind(read_yaml(cfg_path)) != "ensemble":
        raise ValueError(f"{out} holds an experiment (see {cfg_path}); choose another ensemble name than '{cfg.name}'")
    return out


def _format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned first column, right-aligned others."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_ensemble(cfg: EnsembleConfig) -> dict[str, Any]:
    """Fit blend weights on members' OOF (the task's objective); write weights.json, oof.csv, config.yaml,
    scores.json (scored by the task); print the members' and the blend's scores; return the scores."""
    if not cfg.members:
        raise ValueError(f"ensemble '{cfg.name}': no members listed")
    out = _check_output_dir(cfg)
    root = Path(cfg.output_root)
    oofs = {name: load_member_oof(root, name) for name in cfg.members}
    member_scores = {name: _read_scores(root, name) for name in cfg.members}
    base, preds = align_oofs(oofs)
    classes = [c[: -len("_vote")] for c in base.columns if c.endswith("_vote")]  # order of the preds arrays
    task, dataset = _task_and_dataset(member_scores, classes)
    targets = base[task.vote_cols(classes)].to_numpy(np.float64)
    mask = _fit_mask(cfg, base)
    log.info("ensemble %s: fitting %d members on %d rows (%s), objective %s", cfg.name, len(cfg.members),
             len(base) if mask is None else int(mask.sum()), "all" if mask is None else f"n_votes >= {cfg.min_votes}", task.fit_label)
    member_list = [preds[n] for n in cfg.members]
    w = fit_weights(targets, member_list, mask, objective=task.fit_loss)
    weights = {n: float(x) for n, x in zip(cfg.members, w)}
    rows = slice(None) if mask is None else mask
    oof = base.assign(**{c: blend(member_list, w)[:, i] for i, c in enumerate(task.pred_cols(classes))})
    fit_loss = task.fit_loss(targets[rows], oof[task.pred_cols(classes)].to_numpy(np.float64)[rows])
    scores = _ensemble_scores(cfg, task, dataset, oof, member_scores)
    scores["members"] = {}
    for n in cfg.members:
        ms = task.score_oof(base.assign(**{c: preds[n][:, i] for i, c in enumerate(task.pred_cols(classes))}))
        scores["members"][n] = {"cv": ms[task.metric], **{k: ms.get(k) for k in task.secondary}, "weight": weights[n],
                                "fit_loss": task.fit_loss(targets[rows], preds[n][rows])}
    scores.update(fit_on=cfg.fit_on, fit_objective=task.fit_label, fit_loss=fit_loss)

    clean_stale_temps(out)  # temp folders of killed earlier runs
    with atomic_dir(out) as tmp:  # the folder's files as one unit: never new weights beside an old scores.json
        save_config(cfg, tmp / "config.yaml")
        atomic_write_json(tmp / "weights.json", {
            "members": list(cfg.members), "weights": weights, "fit_on": cfg.fit_on, "min_votes": cfg.min_votes,
            "n_fit_rows": len(base) if mask is None else int(mask.sum()), "fit_objective": task.fit_label,
            "fit_loss": fit_loss, "classes": classes,
        })
        atomic_write_csv(tmp / "oof.csv", oof)
        scores = write_scores(tmp, scores)
    print(_format_table(_table_rows(cfg, task, scores, mask is not None)))
    print(f"outputs: {out}  (weights.json, oof.csv, scores.json)")
    log.info("ensemble %s: CV %s, weights %s", cfg.name, task.headline(scores), {k: round(v, 3) for k, v in weights.items()})
    return scores


def _fit_mask(cfg: EnsembleConfig, base: pd.DataFrame) -> Optional[np.ndarray]:
    """Rows the weights are fitted on: all (None), or n_votes >= min_votes (`fit_on: min_votes`)."""
    if cfg.fit_on != "min_votes":
        return None
    n_votes = base["n_votes"].to_numpy(np.float64)
    mask = n_votes >= cfg.min_votes
    if not mask.any():
        raise ValueError(
            f"ensemble '{cfg.name}': fit_on min_votes selects no rows (none of {len(base)} has n_votes >= "
            f"{cfg.min_votes}; max is {n_votes.max():g}); use `fit_on: all`"
        )
    return mask


def _ensemble_scores(cfg: EnsembleConfig, task: Task, dataset: str, oof: pd.DataFrame,
                     member_scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """scores.json of the blend: the task's scores of its OOF plus what the leaderboard lists."""
    scores = score_table(task, oof, dataset)
    missing = sorted({int(k) for ms in member_scores.values() for k in ms.get("missing_folds", []) or []})
    scores.update({
        "missing_folds": missing,
        "model": "ensemble",
        "backbone": "-",
        "inputs": list(cfg.members),
        "n_params": int(sum(int(ms.get("n_params") or 0) for ms in member_scores.values())),
        "train_time_s": float(sum(float(ms.get("train_time_s") or 0.0) for ms in member_scores.values())),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return scores


def _table_rows(cfg: EnsembleConfig, task: Task, scores: dict[str, Any], masked: bool) -> list[tuple[str, ...]]:
    """The printed table: weight, CV by the task's metrics and the fit objective, per member and for the blend."""
    fit = f"fit {task.fit_label}" + (f" (>= {cfg.min_votes})" if masked else "")
    head = ("member", "weight", f"CV {task.label(task.metric)}", *(task.label(k) for k in task.secondary), fit)

    def row(name: str, weight: float, s: dict[str, Any]) -> tuple[str, ...]:
        return (name, f"{weight:.3f}", fmt(s.get("cv")), *(fmt(s.get(k)) for k in task.secondary), fmt(s.get("fit_loss")))

    rows = [head] + [row(n, m["weight"], m) for n, m in scores["members"].items()]
    return rows + [row(f"= {cfg.name}", 1.0, scores)]
