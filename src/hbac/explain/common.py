"""What every explanation method shares: a trained fold loaded with its data, and tensor wrappers for captum.

A fold is read with `engine.checkpoint.load_checkpoint` and built with `models.build_model`; its
validation rows come from the experiment's `oof.csv` (rows of that fold) joined to the cache's
sample table, so every window is read by `data.WindowDataset` exactly as in training.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import default_collate

from hbac.cache import open_cache
from hbac.config import ExperimentConfig, from_dict, load_config
from hbac.data.dataset import experiment_dataset
from hbac.engine.checkpoint import load_checkpoint
from hbac.errors import ConfigError
from hbac.models import build_model
from hbac.tasks import task_from_classes

log = logging.getLogger(__name__)

META_KEYS = ("target", "weight", "index")  # WindowDataset item keys that are not model inputs


def event_class_of(classes: Sequence[str]) -> Optional[str]:
    """The class a task with events detects (`Task.event_class`) when `classes` are that task's, else None."""
    try:
        return task_from_classes(classes).event_class
    except ConfigError:
        return None


@dataclass
class Fold:
    """A trained fold: config, checkpoint, torch model (None for the feature baseline) and its data."""

    exp_dir: Path
    fold: int
    cfg: ExperimentConfig
    ckpt: dict[str, Any]
    model: Optional[nn.Module]
    classes: list[str]
    channels: list[str]
    fs: float
    n_times: int
    cache: Any = None

    @property
    def is_torch(self) -> bool:
        return self.model is not None

    @property
    def seizure(self) -> bool:
        """A task with events (the seizure task): KL-based figures get their event-task equivalents."""
        return event_class_of(self.classes) is not None


def load_fold(exp_dir: Path, fold: int, device: Optional[torch.device] = None) -> Fold:
    """Read `exp_dir/fold{fold}/best.pt` and build its model in eval mode (on `device`, default CPU)."""
    exp_dir = Path(exp_dir)
    path = exp_dir / f"fold{fold}" / "best.pt"
    if not path.exists():
        have = sorted(p.parent.name for p in exp_dir.glob("fold*/best.pt"))
        raise FileNotFoundError(f"checkpoint not found: {path} (trained folds: {', '.join(have) or 'none'})")
    ckpt = load_checkpoint(path, map_location="cpu")
    cfg = from_dict(ExperimentConfig, ckpt["config"], str(path))
    classes, channels = list(ckpt["classes"]), list(ckpt["channels"])
    model = None
    if ckpt.get("kind") != "features":
        model = build_model(dataclasses.replace(cfg.model, pretrained=False), n_classes=len(classes), channels=channels, fs=ckpt["fs"],
                            n_times=ckpt["n_times"], window_filter=ckpt.get("window_filter"))
        model.load_state_dict(ckpt["model"])
        model.to(device or torch.device("cpu")).eval()
    return Fold(exp_dir, fold, cfg, ckpt, model, classes, channels, float(ckpt["fs"]), int(ckpt["n_times"]))


def default_fold(exp_dir: Path) -> int:
    """The lowest fold with a best.pt."""
    folds = sorted(int(p.parent.name[4:]) for p in Path(exp_dir).glob("fold*/best.pt") if p.parent.name[4:].isdigit())
    if not folds:
        raise FileNotFoundError(f"no trained fold under {exp_dir} (fold*/best.pt); train it with `python -m hbac train CONFIG`")
    return folds[0]


def experiment_config(exp_dir: Path) -> ExperimentConfig:
    """The resolved config.yaml of an experiment folder; a missing one is an error naming it."""
    p = Path(exp_dir) / "config.yaml"
    if not p.exists():
        raise FileNotFoundError(f"experiment config not found: {p}")
    return load_config(p)


def open_fold_cache(f: Fold, data_dir: Optional[str] = None) -> Any:
    """The cache the fold was trained on, or (with `data_dir`) the same preprocessing over another data folder."""
    dcfg = f.cfg.data
    if data_dir is not None:
        dcfg = dataclasses.replace(dcfg, data_dir=str(data_dir), name=f"{dcfg.name}_explain_{Path(data_dir).name}",
                                   allow_missing=True, skip_unreadable=True)
    f.cache = open_cache(dcfg)
    if list(f.cache.channels) != f.channels:
        raise ValueError(f"{f.cache.path}: channels {f.cache.channels} differ from the checkpoint's {f.channels}")
    return f.cache


def fold_oof(exp_dir: Path, fold: int) -> pd.DataFrame:
    """Rows of `exp_dir/oof.csv` (or `fold{k}/oof.csv`) predicted by fold `fold`."""
    for p in (Path(exp_dir) / "oof.csv", Path(exp_dir) / f"fold{fold}" / "oof.csv"):
        if p.exists():
            oof = pd.read_csv(p)
            if "fold" in oof.columns:
                oof = oof[oof["fold"] == fold]
            if len(oof):
                return oof.reset_index(drop=True)
    raise FileNotFoundError(f"no OOF rows of fold {fold} in {exp_dir}/oof.csv or fold{fold}/oof.csv")


def cache_rows(cache: Any, sample_ids: Sequence[Any]) -> pd.DataFrame:
    """The cache's sample-table rows for `sample_ids`, in that order; an unknown id is an error naming it."""
    s = cache.samples
    key = s["sample_id"].astype(str)
    pos = pd.Index(key).get_indexer([str(i) for i in sample_ids])
    if (pos < 0).any():
        bad = [sid for sid, p in zip(sample_ids, pos) if p < 0]
        raise KeyError(f"sample_id {bad[0]!r} is not in the cache {cache.path} ({len(bad)} missing)")
    return s.iloc[pos].reset_index(drop=True)


def make_batch(f: Fold, table: pd.DataFrame, device: Optional[torch.device] = None) -> dict[str, torch.Tensor]:
    """Model inputs for the rows of `table` (cache sample rows): {'eeg': (B, C, T), ['kaggle_spec': (B, 4, 100, 300)]}."""
    ds = experiment_dataset(f.cfg, f.cache, table)  # the experiment's own inputs and window crop
    batch = default_collate([ds[i] for i in range(len(ds))])
    if device is None:
        device = next(f.model.parameters()).device if f.model is not None else torch.device("cpu")
    return {k: v.to(device) for k, v in batch.items() if k not in META_KEYS}


class TensorModel(nn.Module):
    """A batch-dict model as a module of positional tensors (captum's interface): forward(*x) → logits (B, K)."""

    def __init__(self, model: nn.Module, keys: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.keys = list(keys)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.keys, xs)))


def input_keys(model: nn.Module) -> list[str]:
    """The batch keys a model reads (its declared `input_keys`, else just 'eeg')."""
    return list(getattr(model, "input_keys", ("eeg",)))


@contextlib.contextmanager
def grad_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode with gradients on; cuDNN off, since its RNN backward refuses eval mode."""
    was = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            yield
    finally:
        model.train(was)


@torch.no_grad()
def predict(model: nn.Module, batch: dict[str, torch.Tensor], chunk: int = 32) -> np.ndarray:
    """Softmax probabilities (B, K) float64 of a batch, `chunk` rows at a time."""
    model.eval()
    n = next(iter(batch.values())).shape[0]
    out = [torch.softmax(model({k: v[i : i + chunk] for k, v in batch.items()}).float(), dim=1) for i in range(0, n, chunk)]
    return torch.cat(out).cpu().numpy().astype(np.float64)


def conv_layers(model: nn.Module, kind: type) -> list[tuple[str, nn.Module]]:
    """(name, module) of every `kind` (nn.Conv1d / nn.Conv2d) with trainable weights, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kind) and m.weight.requires_grad]


def minmax(a: np.ndarray, axis: Any = None) -> np.ndarray:
    """Scale to [0, 1] over `axis` (constant input → zeros)."""
    lo = a.min(axis=axis, keepdims=True)
    hi = a.max(axis=axis, keepdims=True)
    return (a - lo) / np.where(hi - lo > 0, hi - lo, 1.0)
