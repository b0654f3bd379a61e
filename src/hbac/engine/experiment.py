"""An experiment: its folds in turn, then oof.csv and scores.json.

Under torchrun (`WORLD_SIZE` > 1) every rank runs this with the same arguments: the process group is joined
here, rank 0 alone checks and writes the folder (config.yaml, train.log, oof.csv, scores.json) and builds the
cache and folds before the other ranks open them; each fold trains with DistributedDataParallel.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from hbac.config import ExperimentConfig, load_config, save_config, to_dict
from hbac.data.split import experiment_table
from hbac.engine.outputs import collect_oof
from hbac.engine.provenance import (
    check_experiment,
    config_changes,
    experiment_hash,
    fold_finished,
    folder_hash,
    trained_folds,
)
from hbac.errors import ExperimentMixError
from hbac.procs import dist_env

# torch (hbac.engine.fold, .seeds, .runtime) is imported inside train_experiment, once there is something to train:
# `train --resume` over finished folds (a restarted notebook) answers in ~2 s instead of 6-7 s (torch, the model built)

log = logging.getLogger(__name__)


def train_experiment(
    cfg: ExperimentConfig, folds: Optional[list[int]] = None, resume: bool = False, progress: bool = True, overwrite: bool = False
) -> dict[str, Any]:
    """Train the given folds (default all) and (re)write oof.csv and scores.json from every finished fold.

    An experiment folder holds folds of one config: another config over trained folds is refused
    (ExperimentMixError) unless `overwrite`, which deletes the old folder first. A run that fails
    before any fold has written a checkpoint leaves no folder behind (if it made the folder). With `resume`, a fold
    continues from its last.pt and a finished one is not trained again; when every fold asked for has finished with
    this config (`nothing_to_resume`), only oof.csv and scores.json are rewritten, and torch is never imported.
    """
    todo = _asked(cfg, folds)
    for k in todo:
        if not 0 <= k < cfg.folds.n_folds:
            raise ValueError(f"--fold {k} is out of range: the config has n_folds {cfg.folds.n_folds}")
    if resume and not overwrite and nothing_to_resume(cfg, todo):
        return rescore_finished(cfg, todo)
    from hbac.engine.runtime import barrier, configure_threads, init_distributed, is_main

    env = init_distributed()
    if env.distributed and cfg.model.kind == "features":
        raise ValueError(f"{cfg.name}: model.kind features (scikit-learn) cannot train under torchrun; run it in one process")
    configure_threads(cfg.train.threads, n_procs=env.local_world_size)
    out = cfg.output_dir()
    if not is_main():
        return _follow(cfg, todo, resume, progress)
    if overwrite and out.exists():
        _remove(out)
    created = not out.exists()
    _check_config(cfg, out, resume)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("hbac").addHandler(handler)
    try:
        if cfg.model.kind == "features":
            # local import: scikit-learn's estimators + skops (about 2-3 CPU-s at start-up, in every train
            # process: torchrun ranks, --gpus children, notebooks) only for a feature-model experiment
            from hbac.features.baseline import train_features_fold

            fold_fn = train_features_fold
        else:
            fold_fn = _fold_trainer(cfg)
        data = experiment_table(cfg)
        barrier()  # the cache and folds exist: the other ranks open them (`_follow`)
        for k in todo:
            fold_fn(cfg, k, resume=resume, data=data, progress=progress)
        return collect_oof(cfg)
    except BaseException:
        if created and not trained_folds(out):  # nothing trained: no empty folder for the leaderboard to list
            logging.getLogger("hbac").removeHandler(handler)
            handler.close()
            _remove(out)
        raise
    finally:
        logging.getLogger("hbac").removeHandler(handler)
        handler.close()


def _follow(cfg: ExperimentConfig, todo: list[int], resume: bool, progress: bool) -> dict[str, Any]:
    """A torchrun rank other than 0: train the folds alongside rank 0, writing nothing; returns {} (rank 0 scores)."""
    from hbac.engine.runtime import barrier

    logging.getLogger("hbac").setLevel(max(logging.WARNING, logging.getLogger("hbac").getEffectiveLevel()))  # one console
    barrier()  # rank 0 has built the cache and folds
    data = experiment_table(cfg)
    fold_fn = _fold_trainer(cfg)
    for k in todo:
        fold_fn(cfg, k, resume=resume, data=data, progress=progress)
    return {}


def _fold_trainer(cfg: ExperimentConfig) -> Any:
    """train_fold, or train_fold_seeds with `train.seeds` (torch: imported here)."""
    if cfg.train.seeds:
        from hbac.engine.seeds import train_fold_seeds

        return train_fold_seeds
    from hbac.engine.fold import train_fold

    return train_fold


def _asked(cfg: ExperimentConfig, folds: Optional[list[int]]) -> list[int]:
    """The folds asked for: `folds`, or every fold of the config."""
    return folds if folds is not None else list(range(cfg.folds.n_folds))


def nothing_to_resume(cfg: ExperimentConfig, folds: Optional[list[int]] = None) -> bool:
    """Whether `train --resume` has nothing to train: one process (not a torchrun rank), the experiment folder's
    config.yaml holds this config, and every fold in `folds` (default: all) has finished with it (fold{k}/fold.json,
    written once the fold's checkpoints and oof.csv are, records the config's hash). Reads a few small files; no torch."""
    if dist_env().distributed:
        return False
    out = cfg.output_dir()
    want = experiment_hash(cfg)
    if not (out / "config.yaml").exists() or folder_hash(out) != want:
        return False
    todo = _asked(cfg, folds)
    return all(fold_finished(out / f"fold{k}", want) for k in todo)


def rescore_finished(cfg: ExperimentConfig, folds: Optional[list[int]] = None) -> dict[str, Any]:
    """What `train --resume` does when `nothing_to_resume(cfg, folds)`: oof.csv and scores.json rewritten from the
    fold files (the experiment's folds checked to share one config first); no torch."""
    check_experiment(cfg.output_dir())
    todo = _asked(cfg, folds)
    log.info("%s: fold(s) %s finished with this config; nothing to resume", cfg.name, ", ".join(map(str, todo)))
    return collect_oof(cfg)


def _remove(out: Path) -> None:
    """Delete an experiment folder: renamed aside first, so a kill midway never leaves half of it under its name."""
    aside = out.with_name(f".{out.name}.old.{os.getpid()}")
    os.replace(out, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _check_config(cfg: ExperimentConfig, out: Path, resume: bool) -> None:
    """Refuse to mix folds trained with different configs in one output folder (ExperimentMixError)."""
    old_path = out / "config.yaml"
    trained = trained_folds(out) if out.exists() else []
    if not trained:
        return
    new_hash = experiment_hash(cfg)
    old_hash = folder_hash(out) if old_path.exists() else None
    if old_hash == new_hash:
        check_experiment(out)  # config.yaml agrees: its folds must too
        return
    changed = config_changes(to_dict(load_config(old_path)), to_dict(cfg)) if old_path.exists() else ["config.yaml missing"]
    raise ExperimentMixError(
        f"{out}: its trained folds ({', '.join(p.name for p in trained)}) used another config "
        f"(differs in {', '.join(changed[:6])}{', …' if len(changed) > 6 else ''}); folds of two configs would mix. "
        f"Give the experiment a new name, or pass --overwrite to delete {out} and retrain"
        + ("; --resume needs the same config" if resume else "")
    )
