"""A NaN stretch in one electrode reaches only the bipolar pairs that use it (real HMS recording)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hbac.datasets.hms import read_eeg
from hbac.signals.filters import preprocess
from hbac.signals.montage import HMS_EEG_CHANNELS, apply_montage, montage_matrix, montage_pairs


def cached(x: np.ndarray) -> np.ndarray:
    """Unipolar (20, T) → what prepare caches before any filter: montage, then per-channel NaN fill."""
    return preprocess(apply_montage(x, HMS_EEG_CHANNELS, "double_banana"), 200.0, nan="interp", band=None, clip_uv=None)


def test_nan_in_one_electrode_touches_only_its_pairs(real_hms: Path) -> None:
    x = read_eeg(next(iter(sorted((real_hms / "train_eegs").glob("*.parquet")))))
    assert not np.isnan(x).any()
    clean = cached(x)
    s, e = 2000, 2600  # 3 s at 200 Hz
    bad = x.copy()
    bad[HMS_EEG_CHANNELS.index("Fp1"), s:e] = np.nan
    got = cached(bad)
    uses_fp1 = np.array(["Fp1" in p for p in montage_pairs("double_banana")])
    assert uses_fp1.sum() == 2
    np.testing.assert_array_equal(got[~uses_fp1], clean[~uses_fp1])  # 14 pairs untouched, bit for bit
    np.testing.assert_array_equal(got[uses_fp1][:, :s], clean[uses_fp1][:, :s])
    np.testing.assert_array_equal(got[uses_fp1][:, e:], clean[uses_fp1][:, e:])
    assert np.isfinite(got).all()
    # the filled stretch is a straight line between its neighbours, not a copy of the lost signal
    seg = got[uses_fp1][:, s:e]
    assert np.abs(np.diff(seg, n=2, axis=1)).max() < 1e-2


def test_nan_in_ekg_changes_nothing(real_hms: Path) -> None:
    x = read_eeg(next(iter(sorted((real_hms / "train_eegs").glob("*.parquet")))))
    bad = x.copy()
    bad[HMS_EEG_CHANNELS.index("EKG"), 1000:1600] = np.nan
    np.testing.assert_array_equal(cached(bad), cached(x))


def test_apply_montage_equals_the_matrix_on_finite_input() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 30, (20, 500)).astype(np.float32)
    for m in ("double_banana", "double_banana_central", "raw"):
        np.testing.assert_allclose(apply_montage(x, HMS_EEG_CHANNELS, m), montage_matrix(m, HMS_EEG_CHANNELS) @ x, atol=1e-4)


def test_preprocess_clips_in_place_only_what_it_may_write() -> None:
    # the cache's own read may be clipped in place (overwrite=True); a caller's array never is,
    # whatever path preprocess takes (nothing to fill, a NaN filled, a band-pass first)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4, 2000)) * 2000).astype(np.float32)
    holed = x.copy()
    holed[1, 10:20] = np.nan
    for given, band in ((x, None), (holed, None), (x, (0.5, 20.0))):
        before = given.copy()
        want = preprocess(given, 200.0, nan="interp", band=band, clip_uv=1024.0)
        np.testing.assert_array_equal(given, before)  # the caller's array is untouched
        assert np.nanmax(np.abs(want)) <= 1024.0 and not np.isnan(want).any()
        mine = given.copy()
        got = preprocess(mine, 200.0, nan="interp", band=band, clip_uv=1024.0, overwrite=True)
        np.testing.assert_array_equal(got, want)
    for given in (x, holed):  # a (C, T) view of a time-major block, as prepare passes it: filled and clipped where it lies
        tm = np.ascontiguousarray(given.T)
        got = preprocess(tm.T, 200.0, nan="interp", clip_uv=1024.0, overwrite=True)
        assert np.shares_memory(got, tm) and np.abs(tm).max() == 1024.0 and not np.isnan(tm).any()
        np.testing.assert_array_equal(got, preprocess(given, 200.0, nan="interp", clip_uv=1024.0))
