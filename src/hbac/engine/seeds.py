"""Several seeds per fold, averaged as one experiment (`train.seeds: [42, 43]`).

Each fold is trained once per seed into `fold{k}/seed{s}/` (best.pt, last.pt, history.csv, oof.csv,
…, exactly what a single-seed fold writes into `fold{k}/`); the fold's `oof.csv` is the mean of
the seeds' OOF predictions and inference averages every `fold{k}/seed{s}/best.pt`
(`engine.outputs.checkpoint_paths`). Resume works per seed.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pandas as pd

from hbac.config import ExperimentConfig
from hbac.engine.fold import train_fold
from hbac.engine.outputs import average_oofs
from hbac.io import atomic_write_csv, atomic_write_json

log = logging.getLogger(__name__)


def train_fold_seeds(cfg: ExperimentConfig, fold: int, resume: bool = False, data: Any = None, progress: bool = True) -> pd.DataFrame:
    """Train fold `fold` once per `train.seeds` entry; write fold{k}/oof.csv (seed mean) and fold{k}/fold.json; return the OOF."""
    seeds = cfg.train.seeds or [cfg.train.seed]
    fold_dir = cfg.output_dir() / f"fold{fold}"
    oofs, infos = [], {}
    for s in seeds:
        cfg_s = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=s))
        log.info("fold %d: seed %d (%d of %d)", fold, s, len(oofs) + 1, len(seeds))
        oofs.append(train_fold(cfg_s, fold, resume=resume, data=data, progress=progress, out_dir=fold_dir / f"seed{s}"))
        infos[str(s)] = json.loads((fold_dir / f"seed{s}" / "fold.json").read_text())
    oof = average_oofs(oofs)
    atomic_write_csv(fold_dir / "oof.csv", oof)
    atomic_write_json(fold_dir / "fold.json", {
        "fold": fold,
        "seeds": seeds,
        "best_score": float(sum(v["best_score"] for v in infos.values()) / len(infos)),  # mean of the seeds' own best
        "train_time_s": float(sum(v["train_time_s"] for v in infos.values())),
        "n_params": max(int(v["n_params"]) for v in infos.values()),
        "per_seed": infos,
    })
    return oof
