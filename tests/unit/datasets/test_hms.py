"""HMS adapter: train.csv validation, parquet readers, the sample table and row selection."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hbac.data.selection import select_samples
from hbac.datasets.hms import (
    HMS_CLASSES,
    HMS_TRAIN_DTYPES,
    HMS_VOTE_COLS,
    SPEC_COLUMNS,
    eeg_path,
    load_table,
    read_eeg,
    read_spectrogram,
    read_test_csv,
    read_train_csv,
    sample_table,
    spec_path,
)
from hbac.datasets.kaggle_spec import kaggle_spec_image, kaggle_spec_window
from hbac.errors import DataError
from hbac.signals.montage import HMS_EEG_CHANNELS


def _train_rows() -> pd.DataFrame:
    """Six valid train.csv rows: two EEGs with several sub-windows, the real column order."""
    votes = np.array([[3, 0, 0, 0, 0, 0], [0, 2, 1, 0, 0, 0], [0, 0, 0, 10, 2, 1], [0, 0, 0, 12, 0, 3], [1, 0, 0, 0, 0, 0], [0, 0, 5, 0, 6, 4]])
    df = pd.DataFrame(
        {
            "eeg_id": [11, 11, 22, 22, 22, 33],
            "eeg_sub_id": [0, 1, 0, 1, 2, 0],
            "eeg_label_offset_seconds": [0.0, 6.0, 0.0, 10.0, 20.0, 0.0],
            "spectrogram_id": [5, 5, 6, 6, 6, 7],
            "spectrogram_sub_id": [0, 1, 0, 1, 2, 0],
            "spectrogram_label_offset_seconds": [0.0, 6.0, 100.0, 110.0, 120.0, 0.0],
            "label_id": [101, 102, 103, 104, 105, 106],
            "patient_id": [1, 1, 2, 2, 2, 3],
            "expert_consensus": ["Seizure", "LPD", "LRDA", "LRDA", "Seizure", "GRDA"],
        }
    )
    for i, c in enumerate(HMS_VOTE_COLS):
        df[c] = votes[:, i]
    return df


def _write(tmp_path: Path, df: pd.DataFrame, name: str = "train.csv") -> Path:
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


# --------------------------------------------------------------------------- train.csv validation


def test_valid_csv_reads_with_real_dtypes(tmp_path: Path) -> None:
    df = read_train_csv(_write(tmp_path, _train_rows()))
    assert list(df.columns) == list(HMS_TRAIN_DTYPES)
    for c, dt in HMS_TRAIN_DTYPES.items():
        assert (df[c].dtype == object or pd.api.types.is_string_dtype(df[c])) if dt == "str" else str(df[c].dtype) == dt, c


def test_missing_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="lpd_vote"):
        read_train_csv(_write(tmp_path, _train_rows().drop(columns=["lpd_vote"])))


def test_wrong_dtype_is_named(tmp_path: Path) -> None:
    df = _train_rows().astype({"patient_id": object})
    df.loc[3, "patient_id"] = "abc"
    with pytest.raises(DataError, match="'patient_id' should be integer.*row 3"):
        read_train_csv(_write(tmp_path, df))
    df = _train_rows().astype({"gpd_vote": float})
    df.loc[2, "gpd_vote"] = 1.5
    with pytest.raises(DataError, match="'gpd_vote'"):
        read_train_csv(_write(tmp_path, df))
    df = _train_rows().astype({"eeg_label_offset_seconds": object})
    df.loc[1, "eeg_label_offset_seconds"] = "six"
    with pytest.raises(DataError, match="eeg_label_offset_seconds"):
        read_train_csv(_write(tmp_path, df))


def test_negative_vote_names_the_row(tmp_path: Path) -> None:
    df = _train_rows()
    df.loc[4, "grda_vote"] = -1
    with pytest.raises(DataError, match="negative vote in column 'grda_vote' at row 4 \\(label_id 105\\)"):
        read_train_csv(_write(tmp_path, df))


def test_all_zero_votes_name_the_row(tmp_path: Path) -> None:
    df = _train_rows()
    df.loc[2, HMS_VOTE_COLS] = 0
    with pytest.raises(DataError, match="all votes are zero at row 2 \\(label_id 103\\)"):
        read_train_csv(_write(tmp_path, df))


def test_duplicate_label_and_negative_offset(tmp_path: Path) -> None:
    df = _train_rows()
    df.loc[5, "label_id"] = 101
    with pytest.raises(DataError, match="duplicate label_id 101 at row 5"):
        read_train_csv(_write(tmp_path, df))
    df = _train_rows()
    df.loc[1, "eeg_label_offset_seconds"] = -2.0
    with pytest.raises(DataError, match="negative eeg_label_offset_seconds at row 1"):
        read_train_csv(_write(tmp_path, df))
    with pytest.raises(FileNotFoundError, match="train.csv"):
        read_train_csv(tmp_path / "nope" / "train.csv")


def test_test_csv_validation(tmp_path: Path) -> None:
    ok = pd.DataFrame({"spectrogram_id": [853520], "eeg_id": [3911565283], "patient_id": [6885]})
    assert read_test_csv(_write(tmp_path, ok, "test.csv")).eeg_id.tolist() == [3911565283]
    with pytest.raises(DataError, match="patient_id"):
        read_test_csv(_write(tmp_path, ok.drop(columns=["patient_id"]), "test.csv"))


# --------------------------------------------------------------------------- parquet readers


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "123.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file at all" * 10)
    for reader in (read_eeg, read_spectrogram):
        with pytest.raises(DataError, match="123.parquet"):
            reader(bad)
    with pytest.raises(DataError, match="missing.parquet"):
        read_eeg(tmp_path / "missing.parquet")


def test_wrong_schema_parquet(tmp_path: Path) -> None:
    n = 400
    cols = {c: np.zeros(n, np.float32) for c in HMS_EEG_CHANNELS if c != "EKG"}
    p = tmp_path / "eeg.parquet"
    pq.write_table(pa.table(cols), p)
    with pytest.raises(DataError, match="eeg.parquet.*EKG"):
        read_eeg(p)
    spec = {c: np.zeros(3, np.float32) for c in SPEC_COLUMNS}
    p = tmp_path / "spec.parquet"
    pq.write_table(pa.table(spec), p)
    with pytest.raises(DataError, match="spec.parquet.*'time'"):
        read_spectrogram(p)
    pq.write_table(pa.table({"time": np.array([1, 3, 5]), **{c: spec[c] for c in SPEC_COLUMNS[:-2]}}), p)
    with pytest.raises(DataError, match="missing 2 column"):
        read_spectrogram(p)


def test_eeg_reader_keeps_channel_order_and_nan(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = {c: rng.normal(size=600).astype(np.float32) for c in reversed(HMS_EEG_CHANNELS)}  # columns in another order
    data["Cz"][10:20] = np.nan
    p = tmp_path / "e.parquet"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(data), preserve_index=False), p)
    x = read_eeg(p)
    assert x.shape == (20, 600) and x.dtype == np.float32
    np.testing.assert_array_equal(x[HMS_EEG_CHANNELS.index("O2")], data["O2"])
    assert np.isnan(x[HMS_EEG_CHANNELS.index("Cz"), 10:20]).all() and np.isnan(x).sum() == 10


# --------------------------------------------------------------------------- sample table and selection


def test_sample_table_soft_labels(tmp_path: Path) -> None:
    raw = _train_rows()
    t = sample_table(read_train_csv(_write(tmp_path, raw)))
    for c in ["sample_id", "recording_id", "group", "start_s", "duration_s", "eeg_id", "label_id", "spectrogram_id", "spec_offset_s", "n_votes"]:
        assert c in t.columns, c
    np.testing.assert_allclose(t[HMS_VOTE_COLS].sum(axis=1), 1.0)
    np.testing.assert_array_equal(t.n_votes, raw[HMS_VOTE_COLS].sum(axis=1))
    np.testing.assert_allclose(t[HMS_VOTE_COLS].to_numpy() * t[["n_votes"]].to_numpy(), raw[HMS_VOTE_COLS].to_numpy())
    assert t.sample_id.tolist() == raw.label_id.tolist() and t.recording_id.tolist() == raw.eeg_id.tolist()
    assert t.group.tolist() == raw.patient_id.tolist() and (t.duration_s == 50).all()
    assert t.spec_offset_s.tolist() == raw.spectrogram_label_offset_seconds.tolist()
    test = sample_table(pd.DataFrame({"spectrogram_id": [1], "eeg_id": [2], "patient_id": [3]}), split="test")
    np.testing.assert_allclose(test[HMS_VOTE_COLS].to_numpy(), 1 / 6)
    assert test.n_votes.tolist() == [0] and test.start_s.tolist() == [0.0]


def test_select_samples_strategies(tmp_path: Path) -> None:
    raw = _train_rows()
    t = sample_table(read_train_csv(_write(tmp_path, raw)))
    assert len(select_samples(t, "all")) == 6
    hi = select_samples(t, "min_votes", min_votes=10)
    assert hi.label_id.tolist() == [103, 104, 106] and (hi.n_votes >= 10).all()
    per = select_samples(t, "per_eeg")
    assert sorted(per.recording_id) == [11, 22, 33]
    assert (per.sample_id == per.recording_id).all()
    np.testing.assert_allclose(per[HMS_VOTE_COLS].sum(axis=1), 1.0)
    for eeg_id, g in raw.groupby("eeg_id"):
        row = per[per.recording_id == eeg_id].iloc[0]
        counts = g[HMS_VOTE_COLS].sum(axis=0).to_numpy()
        assert row.n_votes_total == counts.sum()
        assert row.n_votes == pytest.approx(g[HMS_VOTE_COLS].sum(axis=1).mean())  # per-label quality, not the sum
        np.testing.assert_allclose(row[HMS_VOTE_COLS].to_numpy(dtype=float), counts / counts.sum())
        assert row.start_s == sorted(g.eeg_label_offset_seconds)[len(g) // 2]  # the middle sub-window
    with pytest.raises(ValueError, match="strategy"):
        select_samples(t, "best")


def test_synthetic_folder_through_load_table(synth_hms: Path) -> None:
    t = load_table(synth_hms)
    np.testing.assert_allclose(t[HMS_VOTE_COLS].sum(axis=1), 1.0)
    assert (t.n_votes >= 1).all() and t.sample_id.is_unique
    test = load_table(synth_hms, "test")
    assert len(test) == len(pd.read_csv(synth_hms / "test.csv")) and (test.n_votes == 0).all()


# --------------------------------------------------------------------------- real data


def test_real_train_csv(real_hms: Path) -> None:
    df = read_train_csv(real_hms / "train.csv")
    assert len(df) == 41_291 and df.eeg_id.nunique() == 6832 and df.patient_id.nunique() == 1490
    t = sample_table(df)
    np.testing.assert_allclose(t[HMS_VOTE_COLS].sum(axis=1), 1.0)
    assert t.n_votes.min() >= 1 and t.n_votes.max() >= 20
    assert set(df.expert_consensus) == {"Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other"}
    assert len(select_samples(t, "per_eeg")) == 6832
    assert len(HMS_CLASSES) == 6


def test_real_parquet_files(real_hms: Path) -> None:
    x = read_eeg(eeg_path(real_hms, 1628180742))
    assert x.shape == (20, 18_000) and x.dtype == np.float32 and np.isfinite(x).all()
    times, vals = read_spectrogram(spec_path(real_hms, 353733))
    assert vals.shape == (320, 400) and times[0] == 1 and times[-1] == 639
    times, vals = read_spectrogram(spec_path(real_hms, 1000086677))
    assert np.isnan(vals).any()  # nulls come back as NaN


def test_real_test_example(real_hms: Path) -> None:
    test = read_test_csv(real_hms / "test.csv")
    r = test.iloc[0]
    x = read_eeg(eeg_path(real_hms, r.eeg_id, "test"))
    assert x.shape == (20, 10_000) and x.dtype == np.float32
    times, vals = read_spectrogram(spec_path(real_hms, r.spectrogram_id, "test"))
    assert vals.shape == (300, 400)
    img = kaggle_spec_image(kaggle_spec_window(vals, times, 0.0))
    assert img.shape == (4, 100, 300) and img.dtype == np.float32 and np.isfinite(img).all()
    assert img.std() > 0.05
