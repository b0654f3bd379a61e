"""Fold-averaged prediction of trained experiments, preprocessed exactly as their checkpoints say."""
from __future__ import annotations

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
from hbac.engine.loop import predict_loader
from hbac.engine.outputs import checkpoint_paths, load_checkpoint
from hbac.engine.provenance import check_checkpoint, check_experiment, folder_hash
from hbac.engine.runtime import configure_threads, device_auto, place_model
from hbac.errors import DataError
from hbac.io import read_json
from hbac.leaderboard import build_leaderboard
from hbac.models import build_model

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


def _tick(timings: Optional[dict[str, float]], key: str, t0: float) -> float:
    """Add the seconds since `t0` to `timings[key]` (when timing); return now."""
    now = time.perf_counter()
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + now - t0
    return now


def predict_experiment(
    exp_dir: Path, data_dir: Path, split: str, cache_root: Path, batch_size: int = 32, device: Optional[torch.device] = None,
    progress: bool = True, timings: Optional[dict[str, float]] = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Average of every fold's predictions on a split, preprocessed exactly as the checkpoints say.

    Returns (the test cache's sample table, probabilities (N, K)). With `timings`, adds the seconds
    spent building the cache (`cache`), loading models (`model_load`) and predicting (`forward`).
    """
    configure_threads()
    device = device or device_auto()
    paths = member_folds(exp_dir)
    want = folder_hash(exp_dir)
    total: Optional[np.ndarray] = None
    cache = None
    t = time.perf_counter()
    for path in paths:
        ckpt = load_checkpoint(path, map_location="cpu")
        check_checkpoint(ckpt, path, want)
        t = _tick(timings, "model_load", t)
        cfg = from_dict(ExperimentConfig, ckpt["config"], str(path))
        if cache is None:
            dcfg = with_overrides(  # the test-split cache: same preprocessing, another split and folder (re-validated)
                cfg.data,
                {"split": split, "data_dir": str(data_dir), "cache_root": str(cache_root), "allow_missing": True, "skip_unreadable": True,
                 "name": f"{cfg.data.name}_{split}"},
                f"{path} (config for the {split} split)",
            )
            cache = open_cache(dcfg)
            t = _tick(timings, "cache", t)
            if len(cache.samples) == 0:
                return cache.samples, np.zeros((0, len(ckpt["classes"])))
        if ckpt.get("kind") == "features":  # a scikit-learn feature model (hbac.features), no torch module

            # local import: scikit-learn + skops (about 1.8 s at start-up) only for feature-model members
            from hbac.features.baseline import predict_features

            p = predict_features(ckpt, cache, cache.samples, progress=progress, source=str(path))
            total = p if total is None else total + p
            t = _tick(timings, "forward", t)
            continue
        # the checkpoint holds every weight: never read the ImageNet file again (it may be absent offline)
        model = build_model(dataclasses.replace(cfg.model, pretrained=False), n_classes=len(ckpt["classes"]), channels=ckpt["channels"], fs=ckpt["fs"], n_times=ckpt["n_times"],
                            window_filter=cache.window_filter)
        model.load_state_dict(ckpt["model"])
        model = place_model(model, device)
        t = _tick(timings, "model_load", t)
        ds = experiment_dataset(cfg, cache, cache.samples)
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
        p = predict_loader(
            model, loader, device, cfg.train.amp, tta_flip=cfg.tta.hemisphere_flip,
            offsets_s=cfg.tta.offsets_s, progress=progress, desc=f"{exp_dir.name} {path.parent.name}",
        )
        total = p if total is None else total + p
        t = _tick(timings, "forward", t)
    assert cache is not None and total is not None
    return cache.samples, total / len(paths)


def class_prior(exp_dir: Path, classes: list[str]) -> np.ndarray:
    """Mean training target of an experiment (from its OOF file), the fallback prediction."""
    p = exp_dir / "oof.csv"
    if p.exists():
        oof = pd.read_csv(p, usecols=[f"{c}_vote" for c in classes])
        prior = oof.mean().to_numpy(dtype=np.float64)
        return prior / prior.sum()
    return np.full(len(classes), 1.0 / len(classes))
