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
