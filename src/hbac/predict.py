"""Batched inference with test-time augmentation; loading trained folds from checkpoints."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def device_auto() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype for a config value ('auto', 'bf16', 'fp16', 'off'); None = fp32."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def predict_loader(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    channels: list[str],
    amp: str = "auto",
    tta_flip: bool = False,
    progress: bool = True,
    desc: str = "predict",
) -> np.ndarray:
    """Softmax probabilities (N, K) float64 for every item of `loader` (in order).

    With `tta_flip` the prediction is the mean of the original and hemisphere-flipped inputs.
    """
    from hbac.models import hemisphere_flip

    model.eval()
    dt = amp_dtype(amp, device)
    out = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        batch = to_device({k: v for k, v in batch.items() if k not in ("target", "weight", "index")}, device)
        views = [batch, hemisphere_flip(batch, channels)] if tta_flip else [batch]
        probs = 0
        for v in views:
            with torch.autocast(device_type=device.type, dtype=dt or torch.float32, enabled=dt is not None):
                logits = model(v)
            probs = probs + torch.softmax(logits.float(), dim=1)
        out.append((probs / len(views)).cpu().numpy().astype(np.float64))
    if not out:
        return np.zeros((0, 0))
    return np.concatenate(out)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint saved by the trainer; a missing file is an error that names it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


# --------------------------------------------------------------------------- submission


def resolve_members(outputs: Path, ensemble: Optional[str] = None, experiment: Optional[str] = None) -> dict[str, float]:
    """{experiment name: blend weight} for an ensemble, one experiment, or the best HMS entry."""
    from hbac.io import read_json

    if ensemble and experiment:
        raise ValueError("give --ensemble or --experiment, not both")
    if experiment:
        return {experiment: 1.0}
    if not ensemble:
        from hbac.leaderboard import build_leaderboard

        lb = build_leaderboard(outputs)
        lb = lb[(lb["task"] == "hms")] if len(lb) else lb
        if "missing_folds" in lb:
            lb = lb[lb["missing_folds"].fillna("").astype(str) == ""]
        if not len(lb):
            raise FileNotFoundError(f"no complete HMS experiment or ensemble under {outputs}; train one with `python -m hbac train CONFIG`")
        best = lb.iloc[0]
        log.info("using the best HMS entry on the leaderboard: %s (CV %.4f)", best["name"], best["cv"])
        if best["kind"] != "ensemble":
            return {str(best["name"]): 1.0}
        ensemble = str(best["name"])
    wpath = outputs / ensemble / "weights.json"
    if not wpath.exists():
        raise FileNotFoundError(f"ensemble weights not found: {wpath} (run `python -m hbac ensemble CONFIG`)")
    w = read_json(wpath)["weights"]
    return {k: float(v) for k, v in w.items() if float(v) > 0}


def member_folds(exp_dir: Path) -> list[Path]:
    """Every fold's best.pt of an experiment; a missing one is an error that names it."""
    from hbac.config import load_config

    cfg_path = exp_dir / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"experiment config not found: {cfg_path}")
    cfg = load_config(cfg_path)
    paths = [exp_dir / f"fold{k}" / "best.pt" for k in range(cfg.folds.n_folds)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"model weights not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return paths


def predict_experiment(
    exp_dir: Path, data_dir: Path, split: str, cache_root: Path, batch_size: int = 32, device: Optional[torch.device] = None, progress: bool = True
) -> tuple[pd.DataFrame, np.ndarray]:
    """Average of every fold's predictions on a split, preprocessed exactly as the checkpoints say.

    Returns (the test cache's sample table, probabilities (N, K)).
    """
    import dataclasses

    from hbac.cache import open_cache
    from hbac.config import ExperimentConfig, from_dict
    from hbac.data import WindowDataset
    from hbac.models import build_model

    device = device or device_auto()
    paths = member_folds(exp_dir)
    total: Optional[np.ndarray] = None
    cache = None
    for path in paths:
        ckpt = load_checkpoint(path, map_location="cpu")
        cfg = from_dict(ExperimentConfig, ckpt["config"], str(path))
        if cache is None:
            dcfg = dataclasses.replace(
                cfg.data, split=split, data_dir=str(data_dir), cache_root=str(cache_root), allow_missing=True, skip_unreadable=True,
                name=f"{cfg.data.name}_{split}",
            )
            cache = open_cache(dcfg)
            if len(cache.samples) == 0:
                return cache.samples, np.zeros((0, len(ckpt["classes"])))
        if ckpt.get("kind") == "features":  # a scikit-learn feature model (hbac.features), no torch module
            from hbac.features import predict_features

            p = predict_features(ckpt, cache, cache.samples, progress=progress)
            total = p if total is None else total + p
            continue
        model = build_model(cfg.model, n_classes=len(ckpt["classes"]), channels=ckpt["channels"], fs=ckpt["fs"], n_times=ckpt["n_times"])
        model.load_state_dict(ckpt["model"])
        model.to(device)
        use_spec = cfg.model.kind in ("2d", "multimodal") and "kaggle_spec" in cfg.model.inputs
        ds = WindowDataset(cache, cache.samples, use_kaggle_spec=use_spec)
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
        p = predict_loader(model, loader, device, ckpt["channels"], cfg.train.amp, tta_flip=cfg.tta.hemisphere_flip, progress=progress, desc=f"{exp_dir.name} {path.parent.name}")
        total = p if total is None else total + p
    assert cache is not None and total is not None
    return cache.samples, total / len(paths)


def make_submission(
    data_dir: Optional[Path] = None,
    outputs: Path = Path("outputs"),
    ensemble: Optional[str] = None,
    experiment: Optional[str] = None,
    out: Path = Path("submission.csv"),
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """Offline inference on `test.csv` → `submission.csv` (columns of sample_submission.csv,
    one row per test eeg_id in test.csv order, rows summing to 1)."""
    import tempfile

    from hbac.constants import HMS_CLASSES, HMS_VOTE_COLS
    from hbac.datasets.hms import find_kaggle_dir, read_test_csv
    from hbac.io import atomic_write_csv

    data_dir = Path(data_dir) if data_dir else (find_kaggle_dir() or Path("inputs/hms"))
    test = read_test_csv(data_dir / "test.csv")
    ss_path = data_dir / "sample_submission.csv"
    columns = list(pd.read_csv(ss_path, nrows=0).columns) if ss_path.exists() else ["eeg_id"] + HMS_VOTE_COLS
    members = resolve_members(Path(outputs), ensemble, experiment)
    wsum = sum(members.values())
    log.info("submission from %s on %d test rows in %s", ", ".join(f"{m} (w={w / wsum:.3f})" for m, w in members.items()), len(test), data_dir)
    blend = np.zeros((len(test), len(HMS_CLASSES)))
    with tempfile.TemporaryDirectory(prefix="hbac_submit_") as tmp:
        for name, w in members.items():
            exp_dir = Path(outputs) / name
            samples, probs = predict_experiment(exp_dir, data_dir, "test", Path(tmp), batch_size=batch_size, progress=progress)
            prior = _class_prior(exp_dir, HMS_CLASSES)
            full = np.tile(prior, (len(test), 1))
            pos = pd.Series(np.arange(len(samples)), index=samples["eeg_id"].to_numpy())
            idx = pos.reindex(test["eeg_id"].to_numpy()).to_numpy()
            ok = ~np.isnan(idx)
            full[ok] = probs[idx[ok].astype(int)]
            if (~ok).any():
                bad = test.loc[~ok, "eeg_id"].tolist()
                log.warning("%s: %d test EEG(s) could not be read, predicting the class prior for them: %s", name, len(bad), bad[:5])
            blend += (w / wsum) * full
    blend = blend / blend.sum(axis=1, keepdims=True)
    sub = pd.DataFrame({"eeg_id": test["eeg_id"].to_numpy()})
    for i, c in enumerate(HMS_VOTE_COLS):
        sub[c] = blend[:, i]
    sub = sub[[c for c in columns if c in sub.columns]]
    atomic_write_csv(out, sub)
    log.info("wrote %s (%d rows)", out, len(sub))
    return sub


def _class_prior(exp_dir: Path, classes: list[str]) -> np.ndarray:
    """Mean training target of an experiment (from its OOF file), the fallback prediction."""
    p = exp_dir / "oof.csv"
    if p.exists():
        oof = pd.read_csv(p, usecols=[f"{c}_vote" for c in classes])
        prior = oof.mean().to_numpy(dtype=np.float64)
        return prior / prior.sum()
    return np.full(len(classes), 1.0 / len(classes))


def submit_main(argv: Optional[list[str]] = None) -> int:
    """`python submit.py`: argument parsing for make_submission."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python submit.py", description="Offline inference on test.csv → submission.csv.")
    p.add_argument("--data-dir", default=None, help="competition folder (default: the Kaggle input folder when present, else inputs/hms)")
    p.add_argument("--outputs", default="outputs", help="folder of trained experiments (default: outputs)")
    p.add_argument("--ensemble", default=None, help="ensemble to use (default: the best HMS entry on the leaderboard)")
    p.add_argument("--experiment", default=None, help="use one experiment instead of an ensemble")
    p.add_argument("--out", default="submission.csv", help="output file (default: submission.csv)")
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        make_submission(a.data_dir, Path(a.outputs), a.ensemble, a.experiment, Path(a.out), a.batch_size)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"submission written to {a.out}")
    return 0
