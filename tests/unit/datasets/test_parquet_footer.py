"""Parquet row counts from the footer bytes agree with pyarrow, and bad files still name themselves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hbac.datasets.hms import read_eeg, read_spectrogram
from hbac.datasets.parquet import _footer_rows, parquet_num_rows
from hbac.errors import DataError


def _write(path: Path, n: int, **kw) -> Path:
    t = pa.table({"time": np.arange(n, dtype=np.float64), "a": np.ones(n, np.float32), "flag": np.zeros(n, bool),
                  "name": [f"r{i}" for i in range(n)]})
    pq.write_table(t, path, **kw)
    return path


@pytest.mark.parametrize("n,kw", [(0, {}), (1, {}), (600, {}), (70_000, {"row_group_size": 1000}),
                                  (5_000, {"compression": "zstd", "write_statistics": False}),
                                  (3_000, {"use_dictionary": False, "data_page_version": "2.0"})])
def test_footer_rows_match_pyarrow(tmp_path: Path, n: int, kw: dict) -> None:
    p = _write(tmp_path / "x.parquet", n, **kw)
    assert _footer_rows(p) == pq.read_metadata(p).num_rows == n


def test_footer_rows_match_polars_written_files(tmp_path: Path) -> None:
    p = tmp_path / "p.parquet"
    pl.DataFrame({f"c{i}": np.random.default_rng(i).normal(size=1234) for i in range(401)}).write_parquet(p)
    assert _footer_rows(p) == 1234


def test_real_files_match_pyarrow(real_hms: Path) -> None:
    files = sorted(real_hms.glob("*_eegs/*.parquet")) + sorted(real_hms.glob("*_spectrograms/*.parquet"))
    assert files
    for p in files:
        assert _footer_rows(p) == pq.read_metadata(p).num_rows, p


@pytest.mark.parametrize("damage", ["truncate", "zero_tail", "empty"])
def test_damaged_file_is_a_data_error_naming_it(tmp_path: Path, damage: str) -> None:
    p = _write(tmp_path / "bad.parquet", 100)
    raw = p.read_bytes()
    p.write_bytes({"truncate": raw[: len(raw) // 2], "zero_tail": raw[:-8] + b"\0" * 8, "empty": b""}[damage])
    with pytest.raises(DataError, match="bad.parquet"):
        parquet_num_rows(p)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.parquet"):
        parquet_num_rows(tmp_path / "nope.parquet")


def test_readers_equal_a_plain_pyarrow_read(real_hms: Path) -> None:
    """The one-call polars read gives the values pyarrow gives (float32, NaN for null), column for column."""
    for p in sorted(real_hms.glob("train_eegs/*.parquet"))[:3]:
        ref = pq.read_table(p).to_pandas()
        x = read_eeg(p)
        np.testing.assert_array_equal(x, ref[[c for c in ref.columns]].to_numpy(np.float32).T[: x.shape[0]])
    for p in sorted(real_hms.glob("train_spectrograms/*.parquet"))[:3]:
        ref = pq.read_table(p).to_pandas()
        times, vals = read_spectrogram(p)
        np.testing.assert_array_equal(times, ref["time"].to_numpy(np.float64))
        np.testing.assert_array_equal(vals, ref.drop(columns="time").to_numpy(np.float32))
