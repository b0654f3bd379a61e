"""Several seeds per fold, averaged as one experiment (`train.seeds: [42, 43]`).

Each fold is trained once per seed into `fold{k}/seed{s}/` (best.pt, last.pt, history.csv, oof.csv,
…, exactly what a single-seed fold writes into `fold{k}/`); the fold's `oof.csv` is the mean of
the seeds' OOF predictions and inference averages every `fold{k}/seed{s}/best.pt`
(`engine.outputs.checkpoint_paths`). Resume works per seed.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from hbac.config import ExperimentConfig, with_overrides
from hbac.engine.fold import train_fold
from hbac.engine.outputs import average_oofs, write_json_strict
from hbac.engine.provenance import experiment_hash
from hbac.engine.runtime import barrier, is_main
from hbac.io import atomic_write_csv
from hbac.tasks.base import finite

log = logging.getLogger(__name__)


def train_fold_seeds(cfg: ExperimentConfig, fold: int, resume: bool = False, data: Any = None, progress: bool = True) -> pd.DataFrame:
    """Train fold `fold` once per `train.seeds` entry; write fold{k}/oof.csv (seed mean) and fold{k}/fold.json; return the OOF."""
    seeds = cfg.train.seeds or [cfg.train.seed]
    fold_dir = cfg.output_dir() / f"fold{fold}"
    oofs, infos = [], {}
    for s in seeds:
        cfg_s = with_overrides(cfg, {"train": {"seed": s}}, f"{cfg.name} (seed {s})")  # a derived config, re-validated
        log.info("fold %d: seed %d (%d of %d)", fold, s, len(oofs) + 1, len(seeds))
        oofs.append(train_fold(cfg_s, fold, resume=resume, data=data, progress=progress, out_dir=fold_dir / f"seed{s}"))
        infos[str(s)] = json.loads((fold_dir / f"seed{s}" / "fold.json").read_text())
    oof = average_oofs(oofs)
    if not is_main():  # torchrun: rank 0 writes the fold's files
        barrier()
        return oof
    atomic_write_csv(fold_dir / "oof.csv", oof)
    best = [b for b in (finite(v.get("best_score")) for v in infos.values()) if b is not None]
    first = next(iter(infos.values()))
    write_json_strict(fold_dir / "fold.json", {
        "fold": fold,
        "seeds": seeds,
        "best_score": sum(best) / len(best) if best else None,  # mean of the seeds' own best (the task's metric)
        "metric": first.get("metric"), "direction": first.get("direction"),
        "train_time_s": float(sum(v["train_time_s"] for v in infos.values())),
        "n_params": max(int(v["n_params"]) for v in infos.values()),
        "per_seed": infos,
        "config_hash": experiment_hash(cfg),  # the experiment's (each seed{s}/fold.json records its seed's config)
    })
    barrier()
    return oof
