"""An experiment's rows: cache, selection and folds; one fold's train/validation split; sample weights."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from hbac.cache import open_cache
from hbac.config import ExperimentConfig
from hbac.data.folds import assign_folds, load_or_make_folds, time_train_mask
from hbac.data.selection import select_samples


def experiment_table(cfg: ExperimentConfig):
    """(cache, every cached sample with a `fold` column, the saved folds) for an experiment.

    The table is NOT the training selection: validation always runs on all labelled rows of a
    fold, whatever `selection.strategy`, so every experiment's OOF file covers the same rows.
    """

    cache = open_cache(cfg.data)
    table = cache.samples.copy()
    folds = load_or_make_folds(table, cfg.folds, cfg.data.dataset, root=Path(cfg.data.cache_root).parent / "folds")
    table["fold"] = assign_folds(table, folds).to_numpy()
    if table["fold"].isna().any():
        raise ValueError(f"{int(table['fold'].isna().sum())} cached rows have no fold")
    table["fold"] = table["fold"].astype(int)
    return cache, table, folds


def fold_rows(cfg: ExperimentConfig, table: pd.DataFrame, folds: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows before selection, validation rows) of a fold; time scheme: train only on earlier blocks."""
    va = table[table.fold == fold]
    if cfg.folds.scheme == "time":

        allowed = set(folds.loc[time_train_mask(folds, fold), "sample_id"])
        tr = table[(table.fold != fold) & table.sample_id.isin(allowed)]
    else:
        tr = table[table.fold != fold]
    return tr.reset_index(drop=True), va.reset_index(drop=True)


def select_training(cfg: ExperimentConfig, rows: pd.DataFrame, min_votes: Optional[int] = None) -> pd.DataFrame:
    """The configured training selection of `rows`, after keeping rows with n_votes >= `min_votes` (stage 2)."""
    if min_votes is not None:
        rows = rows[rows.n_votes >= min_votes]
    if len(rows) == 0:
        return rows.reset_index(drop=True)
    return select_samples(rows, cfg.selection.strategy, cfg.selection.min_votes)


def fold_split(cfg: ExperimentConfig, table: pd.DataFrame, folds: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selected training rows, validation rows = every labelled row of the fold)."""
    raw, va = fold_rows(cfg, table, folds, fold)
    tr = select_training(cfg, raw)
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"fold {fold}: {len(tr)} training rows, {len(va)} validation rows")
    return tr, va


def sample_weights(cfg: ExperimentConfig, table: pd.DataFrame) -> np.ndarray:
    if not cfg.train.weight_by_votes:
        return np.ones(len(table), np.float32)
    w = table["n_votes"].to_numpy(np.float32).clip(1, 20)  # votes per label (per_eeg: mean over its labels), capped
    return w / w.mean()
