"""An experiment's rows: cache, selection and folds; one fold's train/validation split; sample weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hbac.cache import open_cache
from hbac.config import ExperimentConfig
from hbac.data.folds import assign_folds, load_or_make_folds, time_train_mask
from hbac.data.selection import select_samples


def experiment_table(cfg: ExperimentConfig):
    """(cache, selected sample table with a `fold` column) for an experiment."""

    cache = open_cache(cfg.data)
    table = cache.samples.copy()
    folds = load_or_make_folds(table, cfg.folds, cfg.data.dataset, root=Path(cfg.data.cache_root).parent / "folds")
    sel = select_samples(table, cfg.selection.strategy, cfg.selection.min_votes)
    sel["fold"] = assign_folds(sel, folds).to_numpy()
    if sel["fold"].isna().any():
        raise ValueError(f"{int(sel['fold'].isna().sum())} selected rows have no fold")
    sel["fold"] = sel["fold"].astype(int)
    return cache, sel, folds


def fold_split(cfg: ExperimentConfig, sel: pd.DataFrame, folds: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation rows of a fold (time scheme: train only on earlier blocks)."""
    va = sel[sel.fold == fold]
    if cfg.folds.scheme == "time":

        allowed = set(folds.loc[time_train_mask(folds, fold), "sample_id"])
        tr = sel[(sel.fold != fold) & sel.sample_id.isin(allowed)]
    else:
        tr = sel[sel.fold != fold]
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"fold {fold}: {len(tr)} training rows, {len(va)} validation rows")
    return tr.reset_index(drop=True), va.reset_index(drop=True)


def sample_weights(cfg: ExperimentConfig, table: pd.DataFrame) -> np.ndarray:
    if not cfg.train.weight_by_votes:
        return np.ones(len(table), np.float32)
    w = table["n_votes"].to_numpy(np.float32).clip(1, 20)  # per_eeg sums can be huge: cap
    return w / w.mean()
