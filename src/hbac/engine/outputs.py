"""An experiment's files: per-fold OOF, learning curves, the merged oof.csv and scores.json (checkpoints: `engine.checkpoint`)."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from hbac.config import ExperimentConfig
from hbac.engine.provenance import experiment_hash
from hbac.io import atomic_write_csv, atomic_write_text
from hbac.plotting import save_png, subplots
from hbac.tasks import Task, json_safe, task_for
from hbac.tasks.kl import oof_classes

log = logging.getLogger(__name__)


ID_COLS = ["sample_id", "recording_id", "group", "start_s", "duration_s", "eeg_id", "label_id"]


def oof_frame(va: pd.DataFrame, probs: np.ndarray, classes: list[str], fold: int) -> pd.DataFrame:
    """OOF table: id columns, fold, n_votes, `<class>_vote` targets, `<class>_pred` probabilities."""
    ids = [c for c in ID_COLS + ["seizure_overlap", "rec_start_s"] if c in va.columns]
    oof = va[ids].copy()
    oof["fold"] = fold
    oof["n_votes"] = va["n_votes"].to_numpy()
    for i, c in enumerate(classes):
        oof[f"{c}_vote"] = va[f"{c}_vote"].to_numpy()
    for i, c in enumerate(classes):
        oof[f"{c}_pred"] = probs[:, i]
    return oof


def average_oofs(oofs: list[pd.DataFrame]) -> pd.DataFrame:
    """Mean of several OOF tables of the same rows (e.g. one per seed): `<class>_pred` averaged, the rest from the first."""
    base = oofs[0].copy()
    pcols = [c for c in base.columns if str(c).endswith("_pred")]
    for o in oofs[1:]:
        if len(o) != len(base) or (o["sample_id"].astype(str).to_numpy() != base["sample_id"].astype(str).to_numpy()).any():
            raise ValueError("average_oofs: the OOF tables do not hold the same rows in the same order")
    base[pcols] = sum(o[pcols].to_numpy() for o in oofs) / len(oofs)
    return base


def checkpoint_paths(exp_dir: Path, cfg: ExperimentConfig) -> list[Path]:
    """Every best.pt an experiment's inference averages: fold{k}/best.pt, or fold{k}/seed{s}/best.pt with train.seeds."""
    folds = [Path(exp_dir) / f"fold{k}" for k in range(cfg.folds.n_folds)]
    if cfg.train.seeds:
        return [f / f"seed{s}" / "best.pt" for f in folds for s in cfg.train.seeds]
    return [f / "best.pt" for f in folds]


def plot_history(hist: pd.DataFrame, path: Path, task: Task, title: str = "") -> list[str]:
    """Learning curve: train loss (left axis) and the task's validation metrics `val_<metric>` (right axis) per
    epoch; returns the curves' legend labels, then the right axis label."""
    fig, ax = subplots(figsize=(7, 4))
    ax.plot(hist.epoch, hist.train_loss, "o-", color="tab:grey", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    for s in hist.stage.unique()[1:]:
        ax.axvline(hist.epoch[hist.stage == s].min() - 0.5, color="grey", ls=":", label=f"{s} starts")
    ax2 = ax.twinx()
    for i, (k, style) in enumerate(zip(_curve_metrics(task), ("s-", "^--", "v:"))):
        col = f"val_{k}"
        if col in hist and pd.to_numeric(hist[col], errors="coerce").notna().any():
            ax2.plot(hist.epoch, pd.to_numeric(hist[col], errors="coerce"), style, color=f"C{i}", label=f"val {task.label(k)}")
    ax2.set_ylabel(f"val {task.label(task.metric)} ({task.better_word()})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    # fixed margins that hold the axis labels and up to 7-character tick labels: tight_layout measures every text
    # box first and makes savefig draw the figure twice (0.38 against 0.24 CPU-s per curve, paid by every fold)
    fig.subplots_adjust(left=0.13, right=0.87, bottom=0.12, top=0.92)
    save_png(fig, path)
    return l1 + l2 + [ax2.get_ylabel()]


def _curve_metrics(task: Task) -> list[str]:
    """The primary metric and the tie-breaks / secondary metrics on its scale (at most three curves)."""
    same_scale = [k for k in task.secondary if k.startswith(task.metric)] + [k for k, _ in task.tiebreak]
    return [task.metric, *same_scale][:3]


def write_fold_files(fold_dir: Path, task: Task, history: list[dict[str, Any]], oof: Optional[pd.DataFrame] = None,
                     info: Optional[dict[str, Any]] = None, title: str = "") -> None:
    """The one writer of a fold's files: history.csv always; with `oof` (fold done) also oof.csv,
    curve.png and, last, fold.json (`info` + the task's metric): the mark of a finished fold (`provenance.fold_finished`)."""
    hist = pd.DataFrame(history)
    atomic_write_csv(fold_dir / "history.csv", hist)
    if oof is None:
        return
    atomic_write_csv(fold_dir / "oof.csv", oof)
    plot_history(hist, fold_dir / "curve.png", task, title=title)
    write_json_strict(fold_dir / "fold.json", {**(info or {}), "metric": task.metric, "direction": task.direction})


def write_json_strict(path: Path, obj: Any) -> None:
    """Write strict JSON (NaN/inf → null; `json.dumps(allow_nan=False)` must succeed), atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def score_table(task: Task, oof: pd.DataFrame, dataset: str) -> dict[str, Any]:
    """The scores.json core of an OOF table: task, dataset, metric, direction, cv (= the primary metric, also
    under its own name), the task's other metrics,
    n_rows, per-fold metrics under "folds" (and, for hms, `cv_min_votes` as before)."""
    s = task.score_oof(oof)
    scores: dict[str, Any] = {
        "task": task.name, "dataset": dataset, "metric": task.metric, "direction": task.direction,
        "cv": s[task.metric], task.metric: s[task.metric], **{k: s.get(k) for k in task.secondary}, **{k: s.get(k) for k, _ in task.tiebreak},
        "n_rows": s["n_rows"], "folds": s.get("folds", {}),
    }
    if "kl_min_votes" in s:
        scores["cv_min_votes"] = s["kl_min_votes"]  # the leaderboard's and the CLI's name for it
    for k, v in s.items():  # task details (e.g. the seizure section read by `detect` and the demo)
        if isinstance(v, dict) and k not in scores:
            scores[k] = v
    scores.update(task.oof_details(oof))  # e.g. the seizure task's post-processing chosen on these predictions
    return scores


def write_scores(out_dir: Path, scores: dict[str, Any]) -> dict[str, Any]:
    """The one writer of `<out_dir>/scores.json` (experiments and ensembles), strict JSON; returns what was written."""
    safe = json_safe(scores)
    write_json_strict(Path(out_dir) / "scores.json", safe)
    return safe


def collect_oof(cfg: ExperimentConfig) -> dict[str, Any]:
    """Concatenate fold{k}/oof.csv into oof.csv and write scores.json (missing folds listed)."""
    out = cfg.output_dir()
    parts, missing, fold_info = [], [], {}
    for k in range(cfg.folds.n_folds):
        p = out / f"fold{k}" / "oof.csv"
        if p.exists():
            parts.append(pd.read_csv(p))
            fj = out / f"fold{k}" / "fold.json"
            if fj.exists():
                fold_info[k] = json.loads(fj.read_text())
        else:
            missing.append(k)
    if not parts:
        return {"cv": None, "missing_folds": missing}
    oof = pd.concat(parts, ignore_index=True)
    atomic_write_csv(out / "oof.csv", oof)
    task = task_for(cfg, oof_classes(oof))
    scores = score_table(task, oof, cfg.data.dataset)
    for k, info in fold_info.items():
        scores["folds"].setdefault(str(k), {}).update({n: v for n, v in info.items() if n not in ("metric", "direction")})
    scores.update({
        "missing_folds": missing,
        "model": cfg.model.kind,
        "backbone": cfg.model.backbone if cfg.model.kind in ("2d", "multimodal") else cfg.model.kind,
        "inputs": cfg.model.inputs if cfg.model.kind in ("2d", "multimodal") else ["eeg"],
        "n_params": max((v.get("n_params", 0) for v in fold_info.values()), default=0),
        "train_time_s": float(sum(v.get("train_time_s", 0.0) for v in fold_info.values())),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_hash": experiment_hash(cfg),
    })
    scores = write_scores(out, scores)
    if missing:
        log.warning("%s: folds %s not trained yet; CV covers %d rows", cfg.name, missing, len(oof))
    log.info("%s: CV %s over %d rows", cfg.name, task.headline(scores), len(oof))
    return scores
