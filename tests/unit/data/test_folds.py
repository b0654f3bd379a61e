"""Folds: patient grouping, stratification, determinism, the saved CSV, the time scheme."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbac.config import FoldConfig
from hbac.data.folds import (
    assign_folds,
    fold_path,
    load_or_make_folds,
    make_folds,
    time_train_mask,
)
from hbac.datasets.hms import HMS_VOTE_COLS


def _table(n_groups: int = 30, seed: int = 0, n_classes: int = 6) -> pd.DataFrame:
    """A random HMS-like sample table: patients → recordings → windows with soft vote targets."""
    rng = np.random.default_rng(seed)
    rows = []
    sid = 1000
    for g in range(n_groups):
        for r in range(int(rng.integers(1, 4))):
            rec = 10_000 * (g + 1) + r
            cls = int(rng.integers(0, n_classes))
            for w in range(int(rng.integers(1, 6))):
                v = rng.dirichlet(np.full(n_classes, 0.3))
                v[cls] += 2
                rows.append((sid, rec, 500 + g, 2.0 * w, *(v / v.sum())))
                sid += 7
    cols = ["sample_id", "recording_id", "group", "start_s"] + [f"c{k}_vote" for k in range(n_classes)]
    t = pd.DataFrame(rows, columns=cols)
    t["n_votes"] = rng.integers(1, 20, len(t))
    return t


def test_group_folds_keep_patients_together() -> None:
    t = _table()
    f = make_folds(t, n_folds=5, seed=1)
    assert list(f.columns) == ["sample_id", "recording_id", "group", "fold"]
    assert f.sample_id.tolist() == t.sample_id.tolist()
    assert f.fold.dtype == np.int64 and set(f.fold) == set(range(5))
    assert f.groupby("group").fold.nunique().max() == 1
    assert f.groupby("recording_id").fold.nunique().max() == 1
    assert f.fold.value_counts().min() > 0


def test_group_folds_are_stable_for_a_seed() -> None:
    t = _table()
    a, b, c = make_folds(t, 5, 1), make_folds(t, 5, 1), make_folds(t, 5, 2)
    pd.testing.assert_frame_equal(a, b)
    assert (a.fold != c.fold).any()


def test_group_folds_errors() -> None:
    t = _table(n_groups=3)
    with pytest.raises(ValueError, match="3 groups"):
        make_folds(t, n_folds=5)
    with pytest.raises(ValueError, match="scheme"):
        make_folds(_table(), scheme="random")
    with pytest.raises(ValueError, match="_vote"):
        make_folds(_table().drop(columns=[c for c in _table().columns if c.endswith("_vote")]))
    dup = _table()
    dup.loc[1, "sample_id"] = dup.loc[0, "sample_id"]
    with pytest.raises(ValueError, match="unique"):
        make_folds(dup)
    with pytest.raises(ValueError, match="rec_start_s"):
        make_folds(_table(), scheme="time")


def test_two_class_table_is_stratified() -> None:
    """Any number of `*_vote` columns: a binary task with a rare positive class."""
    rng = np.random.default_rng(3)
    n = 2000
    group = rng.integers(0, 40, n)
    pos = rng.random(n) < 0.1
    t = pd.DataFrame({"sample_id": np.arange(n), "recording_id": group * 10 + rng.integers(0, 3, n), "group": group})
    t = t.assign(background_vote=(~pos).astype(float), seizure_vote=pos.astype(float))
    # StratifiedGroupKFold with a shuffle keeps every fold's positive rate near 10 %
    f = make_folds(t, 4, seed=0)
    rate = t.seizure_vote.groupby(f.fold).mean()
    assert ((rate > 0.04) & (rate < 0.2)).all(), rate


def test_saved_folds_are_reused(tmp_path: Path) -> None:
    t = _table()
    cfg = FoldConfig(n_folds=5, seed=3)
    first = load_or_make_folds(t, cfg, "hms", root=tmp_path)
    path = fold_path(cfg, "hms", tmp_path)
    assert path == tmp_path / "hms_5f_s3_group.csv" and path.exists()
    # another row order (and a subset) reads the same folds back
    shuffled = t.sample(frac=0.7, random_state=0)
    again = load_or_make_folds(shuffled, cfg, "hms", root=tmp_path)
    assert again.sample_id.tolist() == shuffled.sample_id.tolist()
    expect = first.set_index("sample_id").fold.loc[shuffled.sample_id].to_numpy()
    np.testing.assert_array_equal(again.fold.to_numpy(), expect)
    # the file is the source of truth: an edited fold shows up (nothing is rebuilt)
    saved = pd.read_csv(path)
    saved.loc[saved.group == saved.group.iloc[0], "fold"] = (saved.fold.iloc[0] + 1) % 5
    saved.to_csv(path, index=False)
    edited = load_or_make_folds(t, cfg, "hms", root=tmp_path)
    assert (edited.fold.to_numpy()[: 1] == (first.fold.iloc[0] + 1) % 5).all()


def test_saved_folds_mismatch_errors(tmp_path: Path) -> None:
    t = _table()
    cfg = FoldConfig(n_folds=5, seed=3)
    load_or_make_folds(t, cfg, "hms", root=tmp_path)
    extra = pd.concat([t, t.iloc[:3].assign(sample_id=[1, 2, 3])], ignore_index=True)
    with pytest.raises(ValueError, match=r"3 of \d+ samples have no fold \(first: 1, 2, 3\).*delete"):
        load_or_make_folds(extra, cfg, "hms", root=tmp_path)
    explicit = FoldConfig(n_folds=4, seed=3, file=str(fold_path(cfg, "hms", tmp_path)))
    with pytest.raises(ValueError, match="n_folds 4.*delete"):
        load_or_make_folds(t, explicit, "hms", root=tmp_path)
    moved = t.copy()
    moved.loc[0, "group"] = 99_999
    with pytest.raises(ValueError, match="group"):
        load_or_make_folds(moved, cfg, "hms", root=tmp_path)
    assert fold_path(explicit, "hms", tmp_path) == Path(explicit.file)


def test_assign_folds_to_selected_and_aggregated_tables() -> None:
    t = _table()
    f = make_folds(t, 5, 0)
    sel = t[t.n_votes >= 10]
    np.testing.assert_array_equal(assign_folds(sel, f).to_numpy(), f.fold.to_numpy()[t.n_votes.to_numpy() >= 10])
    per_rec = t.groupby("recording_id", as_index=False).first()
    per_rec["sample_id"] = per_rec["recording_id"]  # like select_samples(..., "per_eeg")
    got = assign_folds(per_rec, f)
    expect = f.groupby("recording_id").fold.first().loc[per_rec.recording_id].to_numpy()
    np.testing.assert_array_equal(got.to_numpy(), expect)
    assert got.dtype == np.int64
    unknown = per_rec.iloc[:2].assign(sample_id=[-1, -2], recording_id=[-1, -2])
    assert assign_folds(unknown, f).isna().all()


def _time_table(seed: int = 0) -> pd.DataFrame:
    """CHB-MIT-like: per patient several one-hour recordings, 10 s windows, `rec_start_s` since the first file."""
    rng = np.random.default_rng(seed)
    parts = []
    for p in range(4):
        starts = np.cumsum(rng.uniform(3600, 5000, int(rng.integers(6, 12))))
        for r in rng.permutation(len(starts)):  # rows not in time order
            n = int(rng.integers(20, 60))
            st = np.arange(n) * 10.0
            seiz = rng.random(n) < 0.1
            parts.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"chb{p:02d}_{r:02d}_{int(s)}" for s in st],
                        "recording_id": f"chb{p:02d}_{r:02d}",
                        "group": f"chb{p:02d}",
                        "start_s": st,
                        "rec_start_s": starts[r],
                        "background_vote": (~seiz).astype(float),
                        "seizure_vote": seiz.astype(float),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def test_time_folds_follow_time_within_each_patient() -> None:
    t = _time_table()
    f = make_folds(t, n_folds=4, scheme="time")
    assert set(f.fold) == {-1, 0, 1, 2, 3}
    assert f.groupby("recording_id").fold.nunique().max() == 1  # recordings are never split
    for g, rows in t.assign(fold=f.fold).groupby("group"):
        order = rows.sort_values(["rec_start_s", "start_s"])
        assert order.fold.is_monotonic_increasing, g
        assert set(rows.fold) == {-1, 0, 1, 2, 3}, g
    for k in range(4):
        m = time_train_mask(f, k)
        assert m.any() and not (m & (f.fold.to_numpy() == k)).any()
        tt = t.assign(fold=f.fold)
        for g, rows in tt.groupby("group"):
            train_end = (rows.rec_start_s + rows.start_s)[m[rows.index]].max()
            val_start = (rows.rec_start_s + rows.start_s)[rows.fold == k].min()
            assert train_end < val_start, (g, k)
    np.testing.assert_array_equal(time_train_mask(f, 2), f.fold.to_numpy() < 2)
    with pytest.raises(ValueError, match="fold 7"):
        time_train_mask(f, 7)


def test_time_folds_saved_and_checked(tmp_path: Path) -> None:
    t = _time_table()
    cfg = FoldConfig(n_folds=4, seed=0, scheme="time")
    a = load_or_make_folds(t, cfg, "chbmit", root=tmp_path)
    assert (tmp_path / "chbmit_4f_s0_time.csv").exists()
    b = load_or_make_folds(t.iloc[::-1], cfg, "chbmit", root=tmp_path)
    np.testing.assert_array_equal(b.fold.to_numpy()[::-1], a.fold.to_numpy())
    # a group-scheme config must not silently read a time-scheme file (fold -1)
    wrong = FoldConfig(n_folds=4, seed=0, scheme="group", file=str(tmp_path / "chbmit_4f_s0_time.csv"))
    with pytest.raises(ValueError, match="scheme 'group'"):
        load_or_make_folds(t, wrong, "chbmit", root=tmp_path)


def test_real_train_csv_folds(real_hms: Path) -> None:
    from hbac.datasets.hms import load_table

    t = load_table(real_hms)
    assert len(t) == 41_291 and t.group.nunique() == 1490
    f = make_folds(t, n_folds=5, seed=42)
    assert f.groupby("group").fold.nunique().max() == 1
    assert f.groupby("recording_id").fold.nunique().max() == 1
    sizes = f.fold.value_counts()
    assert sizes.min() > 0.8 * len(t) / 5 and sizes.max() < 1.2 * len(t) / 5
    y = t[HMS_VOTE_COLS].to_numpy().argmax(axis=1)
    overall = np.bincount(y, minlength=6) / len(y)
    for k in range(5):
        share = np.bincount(y[f.fold == k], minlength=6) / (f.fold == k).sum()
        assert np.abs(share - overall).max() < 0.03, (k, share, overall)
