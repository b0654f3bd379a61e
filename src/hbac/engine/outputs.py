"""An experiment's files: checkpoints, per-fold OOF, learning curves, the merged oof.csv and scores.json."""
from __future__ import annotations

import json
import logging
import pickle
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hbac.config import ExperimentConfig
from hbac.datasets import get_adapter
from hbac.errors import CheckpointError
from hbac.io import atomic_path, atomic_write_csv, atomic_write_json
from hbac.tasks.events import seizure_scores, tune_postprocessing
from hbac.tasks.kl import score_oof

log = logging.getLogger(__name__)


ID_COLS = ["sample_id", "recording_id", "group", "start_s", "duration_s", "eeg_id", "label_id"]


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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


def plot_history(hist: pd.DataFrame, path: Path, title: str = "") -> None:
    """Learning curve: train loss and validation KL (all rows, n_votes ≥ 10) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(hist.epoch, hist.train_loss, "o-", label="train loss")
    ax.plot(hist.epoch, hist.val_kl, "s-", label="val KL")
    if hist.val_kl_min_votes.notna().any():
        ax.plot(hist.epoch, hist.val_kl_min_votes, "^--", label="val KL (n_votes ≥ 10)")
    for s in hist.stage.unique()[1:]:
        ax.axvline(hist.epoch[hist.stage == s].min() - 0.5, color="grey", ls=":", label=f"{s} starts")
    ax.set_xlabel("epoch")
    ax.set_ylabel("KL divergence")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


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
    s = score_oof(oof)
    scores: dict[str, Any] = {
        "task": cfg.data.dataset,
        "metric": "kl",
        "cv": s["kl"],
        "cv_min_votes": s["kl_min_votes"],
        "n_rows": s["n_rows"],
        "folds": {
            str(k): {"kl": s.get(f"fold{k}_kl"), "kl_min_votes": s.get(f"fold{k}_kl_min_votes"), **fold_info.get(k, {})}
            for k in range(cfg.folds.n_folds)
            if k not in missing
        },
        "missing_folds": missing,
        "model": cfg.model.kind,
        "backbone": cfg.model.backbone if cfg.model.kind in ("2d", "multimodal") else cfg.model.kind,
        "inputs": cfg.model.inputs if cfg.model.kind in ("2d", "multimodal") else ["eeg"],
        "n_params": max((v.get("n_params", 0) for v in fold_info.values()), default=0),
        "train_time_s": float(sum(v.get("train_time_s", 0.0) for v in fold_info.values())),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if get_adapter(cfg.data.dataset).task == "seizure":
        scores["seizure"] = seizure_scores(oof, find_best=True)
        # post-processing chosen on the out-of-fold (validation) predictions: what `detect` uses
        scores["postprocessing"] = tune_postprocessing(oof)
    atomic_write_json(out / "scores.json", scores)
    if missing:
        log.warning("%s: folds %s not trained yet; CV covers %d rows", cfg.name, missing, len(oof))
    log.info("%s: CV KL %.4f (n_votes >= 10: %.4f) over %d rows", cfg.name, scores["cv"], scores["cv_min_votes"], len(oof))
    return scores


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `torch.load(weights_only=True)`: tensors and plain types only, never code.

    A missing file is a FileNotFoundError naming it; a file holding other pickled objects (a crafted
    `__reduce__` payload, or a checkpoint from another program) or a corrupt one is a CheckpointError
    naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused a global: never run it
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a trusted checkpoint: it holds objects other than tensors and plain values ({first[:200]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt?): {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a trusted checkpoint: expected a dict, found {type(obj).__name__}")
    return obj
