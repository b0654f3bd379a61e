"""Training-row selection over any sample table, and the target columns."""
from __future__ import annotations

import numpy as np
import pandas as pd


def vote_columns(table: pd.DataFrame) -> list[str]:
    """The `<class>_vote` target columns of a table, in table order."""
    cols = [c for c in table.columns if c.endswith("_vote")]
    if not cols:
        raise KeyError("table has no '<class>_vote' target columns")
    return cols


def select_samples(table: pd.DataFrame, strategy: str = "all", min_votes: int = 10) -> pd.DataFrame:
    """Training-row selection over any sample table.

    `all`: every row; `min_votes`: rows with n_votes ≥ min_votes; `per_eeg`: one row per
    recording, its votes summed over all its sub-windows (as the top HMS solutions did),
    placed at the recording's middle sub-window (by start time); `sample_id` becomes the
    recording id and `window_sample_id` keeps the sample id of the window it is placed at.

    `n_votes` stays a per-label quality column in every strategy: for `per_eeg` it is the mean
    of the sub-windows' vote counts (an EEG whose labels each had 3-6 votes keeps 3-6, however
    many labels it has), and `n_votes_total` is their sum. Validation never uses this: it runs
    on all labelled rows of a fold (`hbac.data.split.fold_split`).
    """
    if strategy == "all":
        return table.reset_index(drop=True)
    if strategy == "min_votes":
        return table[table.n_votes >= min_votes].reset_index(drop=True)
    if strategy != "per_eeg":
        raise ValueError(f"unknown selection strategy {strategy!r} (all, per_eeg, min_votes)")
    vcols = vote_columns(table)
    t = table.reset_index(drop=True)
    counts = t[vcols].to_numpy(dtype=np.float64) * t["n_votes"].to_numpy(dtype=np.float64)[:, None]
    codes, uniq = pd.factorize(t["recording_id"], sort=False)
    sums = np.zeros((len(uniq), len(vcols)))
    np.add.at(sums, codes, counts)
    # middle sub-window of each recording, by start time
    order = np.lexsort((t["start_s"].to_numpy(), codes))
    sizes = np.bincount(codes, minlength=len(uniq))
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    mid_rows = order[first + sizes // 2]
    rep = t.iloc[mid_rows].copy()
    tot = sums.sum(axis=1)
    rep[vcols] = sums / np.where(tot > 0, tot, 1)[:, None]
    rep["n_votes"] = np.bincount(codes, weights=t["n_votes"].to_numpy(np.float64), minlength=len(uniq)) / sizes
    rep["n_votes_total"] = tot.round().astype(np.int64)
    rep["window_sample_id"] = rep["sample_id"]
    rep["sample_id"] = rep["recording_id"]
    return rep.reset_index(drop=True)
