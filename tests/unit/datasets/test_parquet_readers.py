"""The polars readers prepare uses give the values a plain pyarrow read gives (real files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hbac.datasets.hms import HMS_EEG_CHANNELS, read_eeg, read_eeg_montage, read_spectrogram
from hbac.signals.montage import apply_montage


def test_readers_equal_a_plain_pyarrow_read(real_hms: Path) -> None:
    """One-call polars reads = pyarrow (float32, NaN for null), column for column, on every real file."""
    for p in sorted(real_hms.glob("*_eegs/*.parquet")):
        ref = pq.read_table(p).to_pandas()[HMS_EEG_CHANNELS].to_numpy(np.float32).T
        np.testing.assert_array_equal(read_eeg(p), ref)
        np.testing.assert_array_equal(read_eeg_montage(p, "double_banana"), apply_montage(ref, HMS_EEG_CHANNELS, "double_banana").T)
    for p in sorted(real_hms.glob("*_spectrograms/*.parquet")):
        ref = pq.read_table(p).to_pandas()
        times, vals = read_spectrogram(p)
        assert vals.dtype == np.float32 and vals.flags.c_contiguous
        np.testing.assert_array_equal(times, ref["time"].to_numpy(np.float64))
        np.testing.assert_array_equal(vals, ref.drop(columns="time").to_numpy(np.float32))


def test_column_types_are_cast_or_named(tmp_path: Path) -> None:
    """Numeric columns of any type (ints, float64, nulls) read as float32 with NaN for null, the file's other
    columns untouched; a non-numeric one is an error naming the file and the column (no real data needed)."""
    import pandas as pd
    import pytest

    from hbac.datasets.hms import SPEC_COLUMNS
    from hbac.errors import DataError

    rng = np.random.default_rng(0)
    vals = rng.random((5, len(SPEC_COLUMNS))).astype(np.float32)
    df = pd.DataFrame(vals, columns=SPEC_COLUMNS)
    df.insert(0, "time", np.arange(1, 11, 2, dtype=np.int16))
    df[SPEC_COLUMNS[3]] = df[SPEC_COLUMNS[3]].astype(np.float64)
    df[SPEC_COLUMNS[7]] = pd.array([1, None, 3, 4, 5], dtype="Int64")  # a null in an integer column
    df.to_parquet(tmp_path / "mixed.parquet", index=False)
    times, got = read_spectrogram(tmp_path / "mixed.parquet")
    assert got.dtype == np.float32 and got.flags.c_contiguous and times.tolist() == [1, 3, 5, 7, 9]
    want = vals.copy()
    want[:, 3] = vals[:, 3].astype(np.float64).astype(np.float32)
    want[:, 7] = [1, np.nan, 3, 4, 5]
    np.testing.assert_array_equal(got, want)
    df[SPEC_COLUMNS[9]] = list("abcde")
    df.to_parquet(tmp_path / "text.parquet", index=False)
    with pytest.raises(DataError, match=rf"text\.parquet: non-numeric column\(s\) \['{SPEC_COLUMNS[9]} \(String\)'\]"):
        read_spectrogram(tmp_path / "text.parquet")
