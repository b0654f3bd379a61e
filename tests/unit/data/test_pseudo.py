"""Pseudo-labels from a teacher's OOF file: exact blend, only low-vote rows, fold check, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbac.config import PseudoConfig
from hbac.data.pseudo import apply_pseudo_labels


def rows() -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": [1, 2, 3, 4], "recording_id": [10, 10, 20, 30], "fold": [1, 1, 2, 2],
        "a_vote": [1.0, 0.0, 0.5, 1.0], "b_vote": [0.0, 1.0, 0.5, 0.0], "n_votes": [2, 15, 3, 1],
    })


def teacher(path: Path, folds=(1, 1, 2), ids=(1, 2, 3)) -> str:
    pd.DataFrame({
        "sample_id": list(ids), "recording_id": [10, 10, 20], "fold": list(folds),
        "a_pred": [0.2, 0.9, 0.6], "b_pred": [0.8, 0.1, 0.4],
    }).to_csv(path, index=False)
    return str(path)


def test_blend_only_low_vote_rows_with_a_prediction(tmp_path: Path) -> None:
    src = teacher(tmp_path / "oof.csv")
    out = apply_pseudo_labels(PseudoConfig(source=src, max_votes=9, weight=0.25), rows())
    t = out[["a_vote", "b_vote"]].to_numpy()
    np.testing.assert_allclose(t[0], 0.75 * np.array([1.0, 0.0]) + 0.25 * np.array([0.2, 0.8]))
    np.testing.assert_allclose(t[1], [0.0, 1.0])  # 15 votes: the experts' label stays
    np.testing.assert_allclose(t[2], 0.75 * np.array([0.5, 0.5]) + 0.25 * np.array([0.6, 0.4]))
    np.testing.assert_allclose(t[3], [1.0, 0.0])  # no teacher prediction: unchanged
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    assert rows()["a_vote"].iloc[0] == 1.0  # the input is not modified


def test_weight_one_replaces_and_recording_fallback(tmp_path: Path) -> None:
    """per_eeg rows carry the recording id as sample_id: they get the mean over the recording's windows."""
    src = teacher(tmp_path / "oof.csv")
    r = rows()
    r.loc[0, "sample_id"] = 10  # a per_eeg row standing for recording 10
    out = apply_pseudo_labels(PseudoConfig(source=src, max_votes=9, weight=1.0), r)
    np.testing.assert_allclose(out[["a_vote", "b_vote"]].to_numpy()[0], [(0.2 + 0.9) / 2, (0.8 + 0.1) / 2])


def test_teacher_on_other_folds_is_refused(tmp_path: Path) -> None:
    src = teacher(tmp_path / "oof.csv", folds=(1, 2, 2))
    with pytest.raises(ValueError, match="other folds.*sample 2"):
        apply_pseudo_labels(PseudoConfig(source=src), rows())


def test_bad_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        apply_pseudo_labels(PseudoConfig(source=str(tmp_path / "nothing.csv")), rows())
    p = tmp_path / "bad.csv"
    pd.DataFrame({"sample_id": [1], "fold": [1], "a_pred": [1.0]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"b_pred"):
        apply_pseudo_labels(PseudoConfig(source=str(p)), rows())
    src = teacher(tmp_path / "oof.csv", ids=(7, 8, 9))
    r = rows().assign(recording_id=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="no prediction"):
        apply_pseudo_labels(PseudoConfig(source=src), r)
