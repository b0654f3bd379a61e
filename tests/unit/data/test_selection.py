"""Training selection vs validation rows: per_eeg keeps a per-label quality column; stage 2 filters labels;
validation is every labelled row of a fold whatever the selection."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hbac.config import ExperimentConfig, from_dict
from hbac.data.selection import select_samples
from hbac.data.split import fold_rows, fold_split, select_training
from hbac.engine.fold import training_stages

CLASSES = ["seizure", "lpd", "gpd", "lrda", "grda", "other"]


def table() -> pd.DataFrame:
    """EEG 1: six labels of 3-6 votes each (sum 27); EEG 2: three labels of 12-15 votes; EEG 3 (fold 1): mixed."""
    rows = []
    for rec, votes, fold in ((1, [3, 4, 5, 6, 4, 5], 0), (2, [12, 15, 13], 0), (3, [2, 14], 1)):
        for j, v in enumerate(votes):
            t = np.zeros(6)
            t[(rec + j) % 6] = 1.0
            rows.append({"sample_id": rec * 100 + j, "recording_id": rec, "group": rec, "start_s": 10.0 * j, "duration_s": 50.0,
                         **{f"{c}_vote": t[i] for i, c in enumerate(CLASSES)}, "n_votes": v, "fold": fold})
    return pd.DataFrame(rows)


def cfg(strategy: str) -> ExperimentConfig:
    return from_dict(ExperimentConfig, {
        "name": "x", "data": {"name": "d"}, "selection": {"strategy": strategy, "min_votes": 5},
        "train": {"stage2": {"enabled": True, "min_votes": 10, "epochs": 1}},
    })


def test_per_eeg_quality_is_per_label() -> None:
    per = select_samples(table(), "per_eeg")
    q = per.set_index("recording_id")
    assert q.loc[1, "n_votes"] == pytest.approx(27 / 6) and q.loc[1, "n_votes_total"] == 27
    assert q.loc[2, "n_votes"] == pytest.approx(40 / 3)
    assert q.loc[1, "window_sample_id"] in set(table().sample_id)


def test_per_eeg_stage2_drops_an_eeg_whose_labels_all_had_few_votes() -> None:
    t = table()
    tr, va = fold_rows(cfg("per_eeg"), t, t[["sample_id"]], fold=1)
    s1, s2 = training_stages(cfg("per_eeg"), tr)
    assert sorted(s1.table.recording_id) == [1, 2]
    assert s2.table.recording_id.tolist() == [2]  # EEG 1 sums 27 votes over its labels, but none had >= 10
    # stage 2 aggregates only the >= 10-vote labels of an EEG
    t3 = select_training(cfg("per_eeg"), t[t.recording_id == 3], min_votes=10)
    assert t3.n_votes.tolist() == [14] and t3[[f"{c}_vote" for c in CLASSES]].to_numpy().argmax() == (3 + 1) % 6


@pytest.mark.parametrize("strategy", ["all", "per_eeg", "min_votes"])
def test_validation_rows_are_every_labelled_row_of_the_fold(strategy: str) -> None:
    t = table()
    tr, va = fold_split(cfg(strategy), t, t[["sample_id"]], fold=0)
    assert sorted(va.sample_id) == sorted(t.sample_id[t.fold == 0])  # same rows for every strategy
    assert (tr.fold == 1).all()
    assert len(tr) == {"all": 2, "per_eeg": 1, "min_votes": 1}[strategy]
