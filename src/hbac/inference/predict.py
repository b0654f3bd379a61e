"""Fold-averaged prediction of trained experiments, preprocessed exactly as their checkpoints say."""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from hbac.cache import open_cache
from hbac.config import ExperimentConfig, from_dict, load_config, with_overrides
from hbac.data.dataset import experiment_dataset
from hbac.engine.loop import tick, predict_loader
from hbac.engine.checkpoint import load_checkpoint
from hbac.engine.outputs import checkpoint_paths
from hbac.engine.provenance import check_checkpoint, check_experiment, folder_hash
from hbac.engine.runtime import configure_threads, device_auto, place_model
from hbac.errors import DataError
from hbac.io import read_json
from hbac.leaderboard import build_leaderboard
from hbac.models import build_model, model_class

log = logging.getLogger(__name__)


def resolve_members(outputs: Path, ensemble: Optional[str] = None, experiment: Optional[str] = None,
                    task: Optional[str] = None) -> dict[str, float]:
    """{experiment name: blend weight} for an ensemble, one experiment, or the best complete entry of `task`."""

    if ensemble and experiment:
        raise ValueError("give --ensemble or --experiment, not both")
    if experiment:
        return {experiment: 1.0}
    if not ensemble:
        if task is None:
            raise ValueError("resolve_members: name an ensemble, an experiment or the task whose best entry to use")
        lb = build_leaderboard(outputs)
        lb = lb[(lb["task"] == task)] if len(lb) else lb
        if "missing_folds" in lb:
            lb = lb[lb["missing_folds"].fillna("").astype(str) == ""]
        if "note" in lb:
            lb = lb[~lb["note"].fillna("").astype(str).str.contains("mixed configs")]
        if not len(lb):
            raise FileNotFoundError(f"no complete {task} experiment or ensemble under {outputs}; train one with `python -m hbac train CONFIG`")
        best = lb.iloc[0]
        log.info("using the best %s entry on the leaderboard: %s (CV %.4f)", task, best["name"], best["cv"])
        if best["kind"] != "ensemble":
            return {str(best["name"]): 1.0}
        ensemble = str(best["name"])
    wpath = outputs / ensemble / "weights.json"
    if not wpath.exists():
        raise FileNotFoundError(f"ensemble weights not found: {wpath} (run `python -m hbac ensemble CONFIG`)")
    w = read_json(wpath)
    w = w.get("weights") if isinstance(w, dict) else None
    if not isinstance(w, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in w.values()):
        raise DataError(f"{wpath}: expected {{\"weights\": {{member: number, …}}}}; rerun `python -m hbac ensemble CONFIG`")
    return {k: float(v) for k, v in w.items() if float(v) > 0}


def member_folds(exp_dir: Path, partial: bool = False) -> list[Path]:
    """Every fold's (and seed's) best.pt of an experiment; a missing one is an error that names it.

    `partial`: use the checkpoints trained so far (a warning names the missing ones; none at all is an error).
    """

    cfg_path = exp_dir / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"experiment config not found: {cfg_path}")
    cfg = load_config(cfg_path)
    paths = checkpoint_paths(exp_dir, cfg)
    missing = [p for p in paths if not p.exists()]
    if missing and partial and len(missing) < len(paths):
        log.warning("%s: %d of %d folds trained; using those (missing: %s)", exp_dir.name, len(paths) - len(missing),
                    len(paths), ", ".join(str(p.relative_to(exp_dir).parent) for p in missing))
        return [p for p in paths if p.exists()]
    if missing:
        raise FileNotFoundError(f"model weights not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    check_experiment(exp_dir)  # every fold from the config in config.yaml
    return paths


def predict_experiment(
    exp_dir: Path, data_dir: Path, split: str, cache_root: Path, batch_size: int = 32, device: Optional[torch.device] = None,
    progress: bool = True, timings: Optional[dict[str, float]] = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Average of every fold's predictions on a split, preprocessed exactly as the checkpoints say.

    Returns (the test cache's sample table, probabilities (N, K)). Every fold's model is loaded once and
    each batch is read once for all of them. With `timings`, adds the seconds spent loading checkpoints
    and building models (`model_load`), building the cache (`cache`), importing a model family
    (`imports`), reading batches (`data`) and in the models (`forward`).
    """
    configure_threads()
    device = device or device_auto()
    paths = member_folds(exp_dir)
    want = folder_hash(exp_dir)
    t = time.perf_counter()
    ckpts = []
    for path in paths:
        ckpts.append(load_checkpoint(path, map_location="cpu"))
        check_checkpoint(ckpts[-1], path, want)
    t = tick(timings, "model_load", t)
    cfg = from_dict(ExperimentConfig, ckpts[0]["config"], str(paths[0]))
    dcfg = with_overrides(  # the test-split cache: same preprocessing, another split and folder (re-validated)
        cfg.data,
        {"split": split, "data_dir": str(data_dir), "cache_root": str(cache_root), "allow_missing": True, "skip_unreadable": True,
         "name": f"{cfg.data.name}_{split}"},
        f"{paths[0]} (config for the {split} split)",
    )
    cache = open_cache(dcfg)
    t = tick(timings, "cache", t)
    if len(cache.samples) == 0:
        return cache.samples, np.zeros((0, len(ckpts[0]["classes"])))
    if ckpts[0].get("kind") == "features":  # scikit-learn feature models (hbac.features), no torch module
        # local import: scikit-learn + skops (about 1.8 s at start-up) only for feature-model members
        from hbac.features.baseline import predict_features

        p = sum(predict_features(ckpt, cache, cache.samples, progress=progress, source=str(path)) for ckpt, path in zip(ckpts, paths))
        tick(timings, "forward", t)
        return cache.samples, p / len(paths)
    model_class(cfg.model.kind)  # its family's imports (timm for 2D models), counted apart from loading
    t = tick(timings, "imports", t)
    models = fold_models(cfg, ckpts, cache.window_filter, device)
    tick(timings, "model_load", t)
    loader = DataLoader(experiment_dataset(cfg, cache, cache.samples), batch_size=batch_size, shuffle=False, num_workers=0)
    p = predict_loader(models, loader, device, cfg.train.amp, tta_flip=cfg.tta.hemisphere_flip, offsets_s=cfg.tta.offsets_s,
                       progress=progress, desc=f"{exp_dir.name} ({len(models)} folds)", timings=timings)
    return cache.samples, p


def fold_models(cfg: ExperimentConfig, ckpts: list[dict], window_filter: Optional[dict], device: torch.device) -> list[torch.nn.Module]:
    """Each checkpoint's model with its weights, on `device`: the architecture is built once (never reading
    ImageNet weights: the checkpoint holds every weight) and copied for the folds with the same input shapes."""
    models: list[torch.nn.Module] = []
    base, base_key = None, None
    for ckpt in ckpts:
        key = (tuple(ckpt["channels"]), float(ckpt["fs"]), ckpt["n_times"], tuple(ckpt["classes"]))
        if base is None or key != base_key:
            base = build_model(dataclasses.replace(cfg.model, pretrained=False), n_classes=len(ckpt["classes"]), channels=ckpt["channels"],
                               fs=ckpt["fs"], n_times=ckpt["n_times"], window_filter=window_filter)
            base_key = key
        model = copy.deepcopy(base)
        model.load_state_dict(ckpt["model"])
        models.append(place_model(model, device))
    return models


def class_prior(exp_dir: Path, classes: list[str]) -> np.ndarray:
    """Mean training target of an experiment (from its OOF file), the fallback prediction."""
    p = exp_dir / "oof.csv"
    if p.exists():
        oof = pd.read_csv(p, usecols=[f"{c}_vote" for c in classes])
        prior = oof.mean().to_numpy(dtype=np.float64)
        return prior / prior.sum()
    return np.full(len(classes), 1.0 / len(classes))
