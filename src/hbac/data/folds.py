"""Cross-validation folds: patient-grouped (HMS) or per-patient time-ordered (CHB-MIT).

Folds are built once from the *full* sample table and saved as a CSV (`sample_id,
recording_id, group, fold`) that every stage reads, so experiments trained on different
selections of the same cache share their folds and their OOF rows can be blended.

Schemes:

* ``group``: `StratifiedGroupKFold` over `group` (the patient), stratified by the argmax of
  the `*_vote` columns. No patient is in two folds, so every recording's rows share a fold.
* ``time``: within each patient, recordings are ordered by `rec_start_s` (then `start_s`) and
  cut into ``n_folds + 1`` contiguous blocks of about equal size (whole recordings, never
  split). The first block gets fold ``-1``: it is training-only history, never validated.
  Block ``b ≥ 1`` is fold ``b - 1``. When validating on fold ``k`` a model may only train on
  the earlier blocks of the same patients, ``fold < k`` — that is `time_train_mask`. Every
  fold therefore has training data (at least the warm-up block) and validation data that
  comes after it in time.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd

from hbac.io import atomic_write_csv

log = logging.getLogger(__name__)


FOLD_COLUMNS = ["sample_id", "recording_id", "group", "fold"]


SCHEMES = ("group", "time")


def _vote_columns(table: pd.DataFrame) -> list[str]:
    cols = [c for c in table.columns if str(c).endswith("_vote")]
    if not cols:
        raise ValueError(f"group folds are stratified by the '*_vote' columns; the table has none (columns: {list(table.columns)})")
    return cols


def _require(table: pd.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; the table has {list(table.columns)}")


def make_folds(table: pd.DataFrame, n_folds: int = 5, seed: int = 42, scheme: str = "group") -> pd.DataFrame:
    """Assign every row of a sample table to a fold → DataFrame (sample_id, recording_id, group, fold int), table order."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown fold scheme {scheme!r}; expected one of {list(SCHEMES)}")
    if n_folds < 2:
        raise ValueError(f"n_folds must be ≥ 2, got {n_folds}")
    _require(table, ["sample_id", "recording_id", "group"], "make_folds")
    if table["sample_id"].duplicated().any():
        dup = table.loc[table["sample_id"].duplicated(), "sample_id"].iloc[0]
        raise ValueError(f"sample_id must be unique; {dup!r} appears more than once")
    n_groups = table["group"].nunique()
    if scheme == "group":
        if n_groups < n_folds:
            raise ValueError(f"{n_groups} groups (patients) cannot fill {n_folds} folds: use n_folds ≤ {n_groups} or more data")
        y = table[_vote_columns(table)].to_numpy(dtype=np.float64).argmax(axis=1)
        fold = np.full(len(table), -1, dtype=np.int64)
        groups = table["group"].astype(str).to_numpy()
        # local import: scikit-learn costs about 1.7 CPU-s at start-up, and most train processes (torchrun
        # ranks, --gpus children, resumed runs) read the fold file written by the first one instead
        from sklearn.model_selection import StratifiedGroupKFold

        skf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for k, (_, va) in enumerate(skf.split(np.zeros(len(table)), y, groups)):
            fold[va] = k
    else:
        _require(table, ["rec_start_s", "start_s"], "the time fold scheme")
        fold = _time_blocks(table, n_folds)
    out = pd.DataFrame({c: table[c].to_numpy() for c in FOLD_COLUMNS[:3]})
    out["fold"] = fold
    _log_sizes(out, table, scheme)
    return out


def _time_blocks(table: pd.DataFrame, n_folds: int) -> np.ndarray:
    """(n_rows,) int64 fold per row for the time scheme: -1 warm-up block, then 0 … n_folds-1 in time order."""
    n_blocks = n_folds + 1
    rec = (
        table.assign(_n=1)
        .groupby(["group", "recording_id"], sort=False)
        .agg(rec_start=("rec_start_s", "min"), first=("start_s", "min"), n=("_n", "sum"))
        .reset_index()
        .sort_values(["group", "rec_start", "first", "recording_id"], kind="stable")
    )
    n_group = rec.groupby("group", sort=False)["n"].transform("sum").to_numpy()
    cum_before = rec.groupby("group", sort=False)["n"].cumsum().to_numpy() - rec["n"].to_numpy()
    mid = (cum_before + rec["n"].to_numpy() / 2.0) / n_group  # a recording's centre, as a fraction of its patient's rows
    rec["fold"] = np.minimum((mid * n_blocks).astype(np.int64), n_blocks - 1) - 1
    key = pd.MultiIndex.from_frame(table[["group", "recording_id"]])
    return rec.set_index(["group", "recording_id"])["fold"].reindex(key).to_numpy(dtype=np.int64)


def _log_sizes(folds: pd.DataFrame, table: pd.DataFrame, scheme: str) -> None:
    by = folds.groupby("fold")
    sizes = by.size()
    groups = by["group"].nunique()
    parts = [f"{k}: {sizes[k]} rows/{groups[k]} groups" for k in sizes.index]
    log.info("%s folds (%d rows, %d groups): %s", scheme, len(folds), folds["group"].nunique(), "; ".join(parts))


def time_train_mask(folds_df: pd.DataFrame, k: int) -> np.ndarray:
    """(n_rows,) bool: rows of a time-scheme fold table a model validated on fold k may train on (fold < k)."""
    fold = folds_df["fold"].to_numpy()
    if not (fold == k).any():
        raise ValueError(f"fold {k} has no rows (folds present: {sorted(pd.unique(fold).tolist())})")
    return fold < k


def fold_path(cfg_folds, dataset: str, root: Union[str, Path] = "inputs/folds") -> Path:
    """The fold CSV of a FoldConfig: its `file`, else `<root>/<dataset>_<n>f_s<seed>_<scheme>.csv`."""
    if cfg_folds.file:
        return Path(cfg_folds.file)
    return Path(root) / f"{dataset}_{cfg_folds.n_folds}f_s{cfg_folds.seed}_{cfg_folds.scheme}.csv"


def _keys(s: pd.Series) -> np.ndarray:
    """Ids as strings, so that ids read back from CSV (int or text) compare equal to the table's."""
    return s.astype(str).to_numpy()


def load_or_make_folds(table: pd.DataFrame, cfg, dataset: str, root: Union[str, Path] = "inputs/folds") -> pd.DataFrame:
    """Read the saved fold CSV (checked against `table` and `cfg`) or build it from `table` and save it.

    cfg: hbac.config.FoldConfig. Returns (sample_id, recording_id, group, fold) for the rows of
    `table`, in table order. The CSV may hold more rows than `table` (e.g. a subset cache).
    """
    path = fold_path(cfg, dataset, root)
    if not path.exists():
        folds = make_folds(table, cfg.n_folds, cfg.seed, cfg.scheme)
        atomic_write_csv(path, folds)
        log.info("folds written to %s", path)
        return folds
    saved = pd.read_csv(path)
    missing_cols = [c for c in FOLD_COLUMNS if c not in saved.columns]
    if missing_cols:
        raise ValueError(f"{path}: fold file lacks column(s) {missing_cols}; delete it to rebuild the folds")
    fold = saved["fold"].to_numpy()
    lo = -1 if cfg.scheme == "time" else 0
    if len(saved) == 0 or fold.max() != cfg.n_folds - 1 or fold.min() < lo:
        raise ValueError(
            f"{path}: folds {sorted(pd.unique(fold).tolist())} do not match the config "
            f"(n_folds {cfg.n_folds}, scheme {cfg.scheme!r}); delete the file to rebuild the folds"
        )
    pos = pd.Series(np.arange(len(saved)), index=_keys(saved["sample_id"]))
    if pos.index.duplicated().any():
        raise ValueError(f"{path}: sample_id {pos.index[pos.index.duplicated()][0]!r} appears twice; delete the file to rebuild the folds")
    want = _keys(table["sample_id"])
    idx = pos.reindex(want).to_numpy()
    miss = np.isnan(idx)
    if miss.any():
        first = ", ".join(map(str, table["sample_id"].to_numpy()[miss][:5]))
        raise ValueError(
            f"{path}: {int(miss.sum())} of {len(table)} samples have no fold (first: {first}); the file was built "
            f"from other data: delete it to rebuild the folds"
        )
    rows = saved.iloc[idx.astype(np.int64)]
    moved = _keys(rows["group"]) != _keys(table["group"])
    if moved.any():
        i = int(np.argmax(moved))
        raise ValueError(
            f"{path}: sample {table['sample_id'].iloc[i]!r} belongs to group {table['group'].iloc[i]!r} but the fold file "
            f"says {rows['group'].iloc[i]!r}; delete the file to rebuild the folds"
        )
    out = pd.DataFrame({c: table[c].to_numpy() for c in FOLD_COLUMNS[:3]})
    out["fold"] = rows["fold"].to_numpy(dtype=np.int64)
    log.info("folds read from %s (%d of its %d rows used)", path, len(out), len(saved))
    return out


def assign_folds(table: pd.DataFrame, folds_df: pd.DataFrame) -> pd.Series:
    """Fold of each row of a (selected or aggregated) table → Series aligned with `table.index`.

    By sample_id when the folds hold it for the same recording, else by recording_id (all rows of
    a recording share a fold). Rows found neither way get NaN (the Series is then float).
    """
    _require(table, ["sample_id", "recording_id"], "assign_folds")
    by_sample = pd.Series(folds_df["fold"].to_numpy(), index=_keys(folds_df["sample_id"]) + "\x00" + _keys(folds_df["recording_id"]))
    by_sample = by_sample[~by_sample.index.duplicated()]
    rec = folds_df.groupby(_keys(folds_df["recording_id"]), sort=False)["fold"]
    split = rec.nunique()
    by_rec = rec.first()
    out = np.array(by_sample.reindex(_keys(table["sample_id"]) + "\x00" + _keys(table["recording_id"])), dtype=np.float64)
    need = np.isnan(out)
    if need.any():
        recs = _keys(table["recording_id"])[need]
        ambiguous = [r for r in pd.unique(recs) if split.get(r, 1) > 1]
        if ambiguous:
            raise ValueError(f"recording {ambiguous[0]!r} spans several folds; its rows cannot be assigned by recording_id")
        out[need] = by_rec.reindex(recs).to_numpy(dtype=np.float64)
    n_missing = int(np.isnan(out).sum())
    if n_missing:
        log.warning("%d of %d rows have no fold (neither their sample_id nor their recording_id is in the folds)", n_missing, len(out))
        return pd.Series(out, index=table.index, name="fold")
    sizes = np.unique(out.astype(np.int64), return_counts=True)
    log.info("rows per fold: %s", dict(zip(sizes[0].tolist(), sizes[1].tolist())))
    return pd.Series(out.astype(np.int64), index=table.index, name="fold")
