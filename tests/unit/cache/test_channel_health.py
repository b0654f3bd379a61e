"""A dead electrode is counted in meta.json / recordings.csv, warned about, and handled by eeg.bad_channels."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import copy_hms_subset

from hbac.cache.build import prepare
from hbac.cache.health import channel_health
from hbac.cache.reader import Cache
from hbac.config import DataConfig, EEGParams
from hbac.datasets import hms
from hbac.errors import DataError


def test_channel_health_counts() -> None:
    x = np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)
    x[1] = np.nan
    x[2] = 5.0
    x[3, :10] = np.nan
    nan_ch, flat_ch, frac = channel_health(x)
    assert nan_ch == [1] and flat_ch == [2] and frac == pytest.approx(110 / 400)


def _health_reference(x: np.ndarray) -> tuple[list[int], list[int], float]:
    """Channel by channel, the plain way."""
    nan_ch, flat_ch = [], []
    for c, row in enumerate(x):
        ok = row[~np.isnan(row)]
        if len(ok) == 0:
            nan_ch.append(c)
        elif ok.min() == ok.max():
            flat_ch.append(c)
    return nan_ch, flat_ch, float(np.isnan(x).sum() / x.size)


@pytest.mark.parametrize("n_times", [1, 7, 255, 256, 257, 4099, 18000])
@pytest.mark.parametrize("time_major", [True, False])
def test_channel_health_equals_a_per_channel_loop(n_times: int, time_major: bool) -> None:
    # blocked reductions over a (T, C) block: every length (shorter than a block, not a multiple of it)
    rng = np.random.default_rng(n_times)
    for trial in range(6):
        x = rng.normal(size=(16, n_times)).astype(np.float32)
        x[rng.random(16) < 0.2] = np.nan  # all-NaN channels
        x[rng.random(16) < 0.2] = rng.normal()  # flat channels
        holes = rng.random(x.shape) < 0.01 * trial  # scattered NaN (none on the first trial)
        x[holes] = np.nan
        x[3, :] = 2.0
        x[3, n_times // 2] = np.nan  # flat apart from a NaN: still flat
        x[5, -1] = np.inf  # not flat, not NaN
        if time_major:
            x = np.ascontiguousarray(x.T).T  # a (C, T) view of a time-major block, as the cache passes it
        assert channel_health(x) == _health_reference(x)


@pytest.fixture()
def dead_fp1(synth_hms: Path, tmp_path: Path) -> tuple[Path, int]:
    """3 synthetic EEGs; in the first one electrode Fp1 is all-NaN (a dead electrode)."""
    out = copy_hms_subset(synth_hms, tmp_path / "hms", 3)
    train = pd.read_csv(out / "train.csv")
    rid = int(train.eeg_id.iloc[0])
    path = hms.eeg_path(out, rid)
    t = pq.read_table(path)
    i = t.column_names.index("Fp1")
    t = t.set_column(i, "Fp1", pa.array(np.full(t.num_rows, np.nan, dtype=np.float32)))
    pq.write_table(t, path)
    return out, rid


def _cfg(data: Path, root: Path, **eeg) -> DataConfig:
    return DataConfig(name="c", data_dir=str(data), cache_root=str(root), workers=1, eeg=EEGParams(**eeg))


def test_dead_electrode_is_counted_and_warned(dead_fp1, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, rid = dead_fp1
    caplog.set_level(logging.WARNING, logger="hbac.cache.build")
    cache = Cache(prepare(_cfg(data, tmp_path / "cache"), progress=False))
    h = cache.meta["channel_health"]
    assert h["n_recordings_with_nan_channels"] == 1 and h["n_recordings_over_max"] == 1 and h["policy"] == "zero"
    assert str(rid) in h["examples"] and "Fp1" in h["examples"][str(rid)]
    rec = cache.recordings.set_index("recording_id")
    assert rec.loc[rid, "n_nan_chans"] >= 2 and (rec.drop(index=rid)["n_nan_chans"] == 0).all()  # Fp1-F7, Fp1-F3 at least
    assert "dead (all-NaN or flat) channel" in caplog.text and str(rid) in caplog.text


def test_dead_electrode_policy_drop_and_error(dead_fp1, tmp_path: Path) -> None:
    data, rid = dead_fp1
    n_rows = int((hms.ADAPTER.table(_cfg(data, tmp_path)).recording_id == rid).sum())
    cache = Cache(prepare(_cfg(data, tmp_path / "drop", bad_channels="drop"), progress=False))
    assert cache.meta["skipped"] == {"dead_channels": n_rows} and rid not in set(cache.samples.recording_id)
    assert rid not in set(cache.recordings.recording_id)
    with pytest.raises(DataError, match=rf"{rid}\.parquet: .*dead channel.*Fp1.*bad_channels is 'error'"):
        prepare(_cfg(data, tmp_path / "err", bad_channels="error"), progress=False)
    # a higher limit accepts it without a report
    cache = Cache(prepare(_cfg(data, tmp_path / "max", bad_channels="error", bad_channels_max=8), progress=False))
    assert cache.meta["channel_health"]["n_recordings_over_max"] == 0 and cache.meta["channel_health"]["n_recordings_with_nan_channels"] == 1
