"""`hbac.prepare`: cache content against the raw files (real where present, synthetic otherwise),
reuse / rebuild by hash, atomicity on failure, bounds checks, dtype, workers."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import copy_hms_subset, shared_folder

from hbac.cache import open_cache
from hbac.cache.build import prepare, resampled_length, stale_dirs
from hbac.cache.reader import Cache
from hbac.config import DataConfig, EEGParams
from hbac.datasets import DatasetAdapter, hms, register, registered
from hbac.datasets.hms import HMSOptions
from hbac.datasets.kaggle_spec import kaggle_spec_window
from hbac.errors import CacheError, DataError
from hbac.signals.filters import fill_nan, preprocess, resample
from hbac.signals.montage import HMS_EEG_CHANNELS, apply_montage

RAW = dict(montage="double_banana", nan="interp", bandpass=None, clip_uv=None)  # the unfiltered montage


def cfg_for(data_dir: Path, cache_root: Path, name: str = "c", **kw) -> DataConfig:
    eeg = kw.pop("eeg", {})
    return DataConfig(name=name, data_dir=str(data_dir), cache_root=str(cache_root), eeg=EEGParams(**eeg), workers=kw.pop("workers", 1), **kw)


def no_leftovers(cache_root: Path, name: str) -> None:
    assert not (cache_root / name).exists(), "a failed build left its cache folder"
    assert stale_dirs(cache_root / name) == [], "a failed build left a temp folder"


# --------------------------------------------------------------------------- synthetic data


@pytest.fixture(scope="session")
def synth_src(synth_hms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 6 train EEGs of the shared synthetic folder (`synth_hms`), copied: a few prepares per test stay fast."""
    return copy_hms_subset(synth_hms, tmp_path_factory.mktemp("prepare_synth") / "hms", 6)


@pytest.fixture()
def synth(synth_src: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic folder, for tests that damage it."""
    dst = tmp_path / "hms"
    shutil.copytree(synth_src, dst)
    return dst


def test_resampled_length_matches_signals_resample() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 7, 9999, 10000, 10001):
        x = rng.standard_normal((2, n)).astype(np.float32)
        for fs_in, fs_out in ((200.0, 100.0), (200.0, 128.0), (256.0, 200.0), (200.0, 200.0)):
            assert resample(x, fs_in, fs_out).shape[1] == resampled_length(n, fs_in, fs_out)


def test_synthetic_windows_are_the_preprocessed_recording(synth_src: Path, tmp_path: Path) -> None:
    cfg = cfg_for(synth_src, tmp_path)
    cache = Cache(prepare(cfg, progress=False))
    table = hms.ADAPTER.table(cfg)
    assert len(cache) == len(table) and cache.meta["n_samples"] == len(table)
    assert cache.meta["hash"] == cfg.hash() and cache.meta["skipped"] == {}
    assert cache.eeg.shape == tuple(cache.meta["eeg_shape"]) and cache.eeg.dtype == np.float32
    # one recording, preprocessed independently, against every window cut from it
    rid = cache.samples.recording_id.iloc[0]
    x, fs = hms.ADAPTER.read(cfg, rid)
    e = cfg.eeg
    y = preprocess(x, fs, nan=e.nan, band=e.bandpass, notch_hz=e.notch_hz, clip_uv=e.clip_uv, fs_out=e.fs)
    rows = np.nonzero(cache.samples.recording_id.to_numpy() == rid)[0]
    for i in rows:
        s = int(round(cache.samples.start_s.iloc[i] * fs))
        np.testing.assert_allclose(cache.window(i), y[:, s : s + 10000], rtol=1e-6, atol=1e-5)
    # Kaggle spectrogram windows, cut the way signals.kaggle_spec_window does
    for i in (0, len(cache) - 1):
        r = cache.samples.iloc[i]
        t, v = hms.read_spectrogram(hms.spec_path(synth_src, int(r.spectrogram_id)))
        np.testing.assert_array_equal(cache.extra_window("kaggle_spec", i), kaggle_spec_window(v, t, r.spec_offset_s))


def test_reused_when_unchanged_rebuilt_when_a_param_changes(synth_src: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hbac.cache.build")
    cfg = cfg_for(synth_src, tmp_path)
    path = prepare(cfg, progress=False)
    meta = path / "meta.json"
    stamp = meta.stat().st_mtime_ns
    caplog.clear()
    assert prepare(cfg, progress=False) == path
    assert meta.stat().st_mtime_ns == stamp
    assert "reusing" in caplog.text
    # a parameter that changes content → rebuilt, and the log says what changed
    cfg2 = dataclasses.replace(cfg, eeg=dataclasses.replace(cfg.eeg, bandpass=[1.0, 15.0]))
    caplog.clear()
    prepare(cfg2, progress=False)
    new = json.loads(meta.read_text())
    assert new["hash"] == cfg2.hash() != cfg.hash()
    assert "parameters changed" in caplog.text and "eeg.bandpass" in caplog.text
    # workers do not change content: same hash, reused
    caplog.clear()
    prepare(dataclasses.replace(cfg2, workers=2), progress=False)
    assert "reusing" in caplog.text
    # force rebuilds
    stamp = meta.stat().st_mtime_ns
    prepare(cfg2, force=True, progress=False)
    assert meta.stat().st_mtime_ns != stamp


POOLS = {"processes": {}, "threads": {"filter_on": "window"}}  # eeg params: per-recording filtering runs in processes


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("damage", ["garbage", "missing_column"])
def test_failed_build_leaves_no_cache_and_names_the_file(synth: Path, tmp_path: Path, damage: str, pool: str) -> None:
    # garbage: not a parquet file; missing_column: a readable file without Cz (both fail in a worker, while reading)
    cfg = cfg_for(synth, tmp_path / "cache", name="broken", workers=2, eeg=POOLS[pool])  # processes: the error crosses a process boundary
    rid = hms.ADAPTER.table(cfg).recording_id.iloc[-1]
    bad = hms.eeg_path(synth, rid)
    if damage == "garbage":
        bad.write_bytes(b"not a parquet file" * 100)
    else:
        t = pq.read_table(bad)
        pq.write_table(t.drop_columns(["Cz"]), bad)
    with pytest.raises(DataError) as ei:
        prepare(cfg, progress=False)
    assert str(bad) in str(ei.value)
    no_leftovers(tmp_path / "cache", "broken")
    # skip_unreadable builds the cache without that recording's rows, and counts them
    n_bad = int((hms.ADAPTER.table(cfg).recording_id == rid).sum())
    cache = Cache(prepare(dataclasses.replace(cfg, skip_unreadable=True), progress=False))
    assert cache.meta["skipped"] == {"unreadable": n_bad}
    assert rid not in set(cache.samples.recording_id) and rid not in set(cache.recordings.recording_id)
    assert len(cache) == len(hms.ADAPTER.table(cfg)) - n_bad


def test_interrupted_build_is_never_trusted(synth_src: Path, tmp_path: Path) -> None:
    cfg = cfg_for(synth_src, tmp_path, name="c")
    # what a killed build leaves: a temp folder, and (older layouts) a folder without meta.json
    stale = tmp_path / ".c.abc123.tmp"
    stale.mkdir()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "eeg.npy").write_bytes(b"partial")
    with pytest.raises(CacheError, match="incomplete"):
        Cache(tmp_path / "c")
    with pytest.raises(CacheError, match="prepare"):
        open_cache(cfg, build=False)
    cache = open_cache(cfg, progress=False)
    assert len(cache) > 0 and not stale.exists()


def test_missing_files_are_counted(synth: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = cfg_for(synth, tmp_path / "cache")
    table = hms.ADAPTER.table(cfg)
    rid, sid = table.recording_id.iloc[0], table.spectrogram_id.iloc[-1]
    hms.eeg_path(synth, rid).unlink()
    hms.spec_path(synth, sid).unlink()
    n_rec = int((table.recording_id == rid).sum())
    n_spec = int(((table.spectrogram_id == sid) & (table.recording_id != rid)).sum())
    with pytest.raises(DataError, match=f"{n_rec + n_spec} of {len(table)} rows reference missing files") as ei:
        prepare(cfg, progress=False)
    assert f"{rid}.parquet" in str(ei.value) and "--allow-missing" in str(ei.value)
    no_leftovers(tmp_path / "cache", cfg.name)
    cache = Cache(prepare(dataclasses.replace(cfg, allow_missing=True), progress=False))
    assert cache.meta["skipped"] == {"missing_recording": n_rec, "missing_spectrogram": n_spec}
    assert len(cache) == len(table) - n_rec - n_spec


def test_window_past_the_end_is_an_error(synth: Path, tmp_path: Path) -> None:
    train = pd.read_csv(synth / "train.csv")
    eid = train.eeg_id.iloc[2]
    length_s = pq.read_metadata(hms.eeg_path(synth, eid)).num_rows / 200.0
    train.loc[2, "eeg_label_offset_seconds"] = length_s - 50.0 + 1.0  # ends 1 s after the recording
    train.to_csv(synth / "train.csv", index=False)
    cfg = cfg_for(synth, tmp_path / "cache")
    with pytest.raises(DataError) as ei:
        prepare(cfg, progress=False)
    msg = str(ei.value)
    assert f"{eid}.parquet" in msg and str(train.label_id.iloc[2]) in msg and "row 2" in msg
    assert f"{length_s:.3f}" in msg
    no_leftovers(tmp_path / "cache", cfg.name)
    cache = Cache(prepare(dataclasses.replace(cfg, allow_missing=True), progress=False))
    assert cache.meta["skipped"] == {"window_past_end": 1} and len(cache) == len(train) - 1
    # half a sample past the end still fits (rounds onto the last sample)
    train.loc[2, "eeg_label_offset_seconds"] = length_s - 50.0 + 0.4 / 200
    train.to_csv(synth / "train.csv", index=False)
    assert len(Cache(prepare(cfg, progress=False))) == len(train)


def test_float16_and_resampling(synth_src: Path, tmp_path: Path) -> None:
    c32 = Cache(prepare(cfg_for(synth_src, tmp_path, name="f32"), progress=False))
    c16 = Cache(prepare(cfg_for(synth_src, tmp_path, name="f16", eeg={"dtype": "float16"}), progress=False))
    assert c16.eeg.dtype == np.float16 and c16.window(0).dtype == np.float32
    assert c16.eeg.shape == c32.eeg.shape
    np.testing.assert_allclose(c16.window(3), c32.window(3), rtol=1e-3, atol=0.05)
    c100 = Cache(prepare(cfg_for(synth_src, tmp_path, name="r100", eeg={"fs": 100.0}), progress=False))
    assert c100.fs == 100.0 and c100.window(0).shape == (16, 5000)
    assert c100.eeg.shape[0] == sum(resampled_length(n, 200.0, 100.0) for n in c32.recordings.eeg_len)


def test_ctrl_c_in_a_thread_worker_unwinds_the_build(synth_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # thread workers (HMS filtered per window): an interrupt while reading ends the build like Ctrl-C:
    # no cache, no temp folder, no worker thread left running
    read, calls = hms.read_eeg_montage, []

    def interrupted(path, montage):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return read(path, montage)

    monkeypatch.setattr(hms, "read_eeg_montage", interrupted)
    cfg = cfg_for(synth_src, tmp_path, name="ctrl_c", workers=2, eeg=POOLS["threads"])
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg, progress=False)
    no_leftovers(tmp_path, "ctrl_c")
    assert not [t for t in threading.enumerate() if t.name.startswith("prepare")]
    assert len(calls) < 6  # the threads stopped taking files


@pytest.mark.parametrize("pool", POOLS)
def test_workers_do_not_change_the_arrays(synth_src: Path, tmp_path: Path, pool: str) -> None:
    # a pool appends files in the order they finish, so the stores' row order may differ: every
    # sample must still read the same EEG and spectrogram window, and every file the same rows
    a = Cache(prepare(cfg_for(synth_src, tmp_path, name="w1", workers=1, eeg=POOLS[pool]), progress=False))
    b = Cache(prepare(cfg_for(synth_src, tmp_path, name="w2", workers=2, eeg=POOLS[pool]), progress=False))
    assert (a.meta["build"]["pool"], b.meta["build"]["pool"]) == ("none", pool)
    assert a.eeg.shape == b.eeg.shape and a.extra("kaggle_spec").shape == b.extra("kaggle_spec").shape
    for i in range(len(a.samples)):
        np.testing.assert_array_equal(a.window(i), b.window(i))
        np.testing.assert_array_equal(a.extra_window("kaggle_spec", i), b.extra_window("kaggle_spec", i))
    rows = [c for c in a.samples.columns if c.endswith(("_row", "_lo", "_hi"))]
    pd.testing.assert_frame_equal(a.samples.drop(columns=rows), b.samples.drop(columns=rows))
    ra, rb = a.recordings.set_index("recording_id"), b.recordings.set_index("recording_id").loc[a.recordings.recording_id]
    np.testing.assert_array_equal(ra.eeg_len, rb.eeg_len)
    for s0, s1, n in zip(ra.eeg_start.to_numpy(int), rb.eeg_start.to_numpy(int), ra.eeg_len.to_numpy(int)):
        np.testing.assert_array_equal(a.eeg[s0 : s0 + n], b.eeg[s1 : s1 + n])


def test_a_large_build_prepares_in_processes(synth_src: Path, tmp_path: Path, monkeypatch) -> None:
    """A thread-safe adapter (HMS filtered per window) prepares in threads below THREADS_MAX_FILES files, in a process
    pool from there (its workers read faster once the pool's start is paid back); an explicit 1 worker stays in-process."""
    import hbac.cache.build as build

    cfg = cfg_for(synth_src, tmp_path, name="large", workers=2, eeg=POOLS["threads"])
    plan = build.plan_rows(cfg)
    n = plan.n_files
    assert n == plan.table.recording_id.nunique() + plan.table.spectrogram_id.nunique() and plan.pool == "threads"
    monkeypatch.setattr(build, "THREADS_MAX_FILES", n + 1)
    assert build.plan_rows(cfg).pool == "threads"
    monkeypatch.setattr(build, "THREADS_MAX_FILES", n)
    assert build.plan_rows(cfg).pool == "processes"
    assert build.plan_rows(dataclasses.replace(cfg, workers=1)).pool == "none"
    assert Cache(prepare(cfg, progress=False)).meta["build"]["pool"] == "processes"


def test_eeg_window_and_no_spectrograms(synth_src: Path, tmp_path: Path) -> None:
    cfg = cfg_for(synth_src, tmp_path, options=HMSOptions(eeg_window_s=10.0, kaggle_spec=False))
    cache = Cache(prepare(cfg, progress=False))
    full = Cache(prepare(cfg_for(synth_src, tmp_path, name="full"), progress=False))
    assert cache.window(4).shape == (16, 2000) and cache.extras == {}
    assert not (cache.path / "spec.npy").exists() and (cache.samples.spec_row == -1).all()
    # the central 10 s of the 50 s window (band-pass edge effects differ only at the recording ends)
    np.testing.assert_allclose(cache.window(4), full.window(4)[:, 4000:6000], rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="session")
def real_raw(real_hms: Path, tmp_path_factory: pytest.TempPathFactory) -> Cache:
    """The real train.csv, unfiltered montage, missing files skipped (skips when the real data is absent); prepared once
    per test run (`shared_folder`, also under pytest-xdist). Read only."""
    def cfg(root: Path) -> DataConfig:
        return cfg_for(real_hms, root, name="real_raw", eeg=RAW, allow_missing=True)

    root = shared_folder(tmp_path_factory, "real_raw_cache", lambda root: prepare(cfg(root), progress=False))
    return Cache(cfg(root).cache_dir())


def test_real_caches_exactly_the_complete_rows(real_raw: Cache, real_hms: Path) -> None:
    counts = real_raw.samples.groupby("eeg_id").size().to_dict()
    assert counts == {1628180742: 9, 2088807520: 16, 2713014975: 27}
    train = pd.read_csv(real_hms / "train.csv")
    assert real_raw.meta["n_rows_in"] == len(train)
    assert sum(real_raw.meta["skipped"].values()) == len(train) - 52
    assert set(real_raw.samples.label_id) == set(
        train.label_id[train.eeg_id.isin(counts) & train.spectrogram_id.isin([353733, 198643605, 780890284])]
    )
    assert real_raw.meta["n_recordings"] == 3 and real_raw.meta["extras"]["kaggle_spec"]["n_files"] == 3


def test_real_raw_window_is_the_montage_of_the_parquet(real_raw: Cache, real_hms: Path) -> None:
    for i in (0, len(real_raw) - 1, int(np.argmax(real_raw.samples.start_s.to_numpy()))):
        r = real_raw.samples.iloc[i]
        df = pd.read_parquet(real_hms / "train_eegs" / f"{int(r.eeg_id)}.parquet")
        s = int(r.start_s * 200)
        x = df[HMS_EEG_CHANNELS].to_numpy(np.float32)[s : s + 10000].T
        expect = fill_nan(apply_montage(x, HMS_EEG_CHANNELS, "double_banana"), "interp")
        np.testing.assert_allclose(real_raw.window(i), expect, rtol=1e-5, atol=1e-5)


def test_real_spec_window_is_the_parquet_rows(real_raw: Cache, real_hms: Path) -> None:
    for i in (0, 20, len(real_raw) - 1):
        r = real_raw.samples.iloc[i]
        df = pd.read_parquet(real_hms / "train_spectrograms" / f"{int(r.spectrogram_id)}.parquet")
        rows = df[df.time >= r.spec_offset_s].drop(columns="time").to_numpy(np.float32)[:300]
        expect = np.full((300, 400), np.nan, np.float32)
        expect[: len(rows)] = rows
        np.testing.assert_array_equal(real_raw.extra_window("kaggle_spec", i), expect)


def test_real_missing_files_error(real_hms: Path, tmp_path: Path) -> None:
    train = pd.read_csv(real_hms / "train.csv")
    have_eeg = {int(p.stem) for p in (real_hms / "train_eegs").glob("*.parquet")}
    have_spec = {int(p.stem) for p in (real_hms / "train_spectrograms").glob("*.parquet")}
    n_bad = int((~(train.eeg_id.isin(have_eeg) & train.spectrogram_id.isin(have_spec))).sum())
    with pytest.raises(DataError, match=f"{n_bad} of {len(train)} rows reference missing files.*--allow-missing"):
        prepare(cfg_for(real_hms, tmp_path, eeg=RAW), progress=False)
    no_leftovers(tmp_path, "c")


def test_real_test_example(real_hms: Path, tmp_path: Path) -> None:
    cache = Cache(prepare(cfg_for(real_hms, tmp_path, split="test"), progress=False))
    assert len(cache) == 1 and cache.meta["skipped"] == {}
    assert cache.window(0).shape == (16, 10000) and cache.extra_window("kaggle_spec", 0).shape == (300, 400)
    assert np.isfinite(cache.window(0)).all() and np.abs(cache.window(0)).max() <= 1024.0


def test_readers_handle_row_groups_nulls_and_wide_types(synth_src: Path, tmp_path: Path) -> None:
    # prepare reads through hms.read_eeg / read_spectrogram: they must equal pandas on any valid layout
    src = next((synth_src / "train_eegs").glob("*.parquet"))
    df = pd.read_parquet(src)
    df.iloc[5:9, 3] = np.nan
    for name, frame, kw in (("groups", df, {"row_group_size": 1000}), ("f64", df.astype("float64"), {})):
        p = tmp_path / f"{name}.parquet"
        frame.to_parquet(p, index=False, **kw)
        x = hms.read_eeg(p)
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert np.isnan(x).sum() == int(df[HMS_EEG_CHANNELS].isna().to_numpy().sum()) > 0
        np.testing.assert_array_equal(x, df[HMS_EEG_CHANNELS].to_numpy(np.float32).T)
    bad = df.assign(Fp1="x")
    bad.to_parquet(tmp_path / "text.parquet", index=False)
    with pytest.raises(DataError, match=r"text\.parquet.*Fp1"):
        hms.read_eeg(tmp_path / "text.parquet")
    s = next((synth_src / "train_spectrograms").glob("*.parquet"))
    t, v = hms.read_spectrogram(s)
    sp = pd.read_parquet(s)
    assert v.flags.c_contiguous and v.shape == (len(sp), 400)
    np.testing.assert_array_equal(v, sp.drop(columns="time").to_numpy(np.float32))
    np.testing.assert_array_equal(t, sp.time.to_numpy(np.float64))


def test_real_cache_equals_the_pandas_montage_of_every_recording(real_raw: Cache, real_hms: Path) -> None:
    # the fast path (polars montage into a time-major block, one pass) against a plain pandas read, bit for bit
    recs = real_raw.recordings
    assert len(recs) == real_raw.meta["n_recordings"] > 0
    for rid, start, n in zip(recs.recording_id, recs.eeg_start.to_numpy(int), recs.eeg_len.to_numpy(int)):
        df = pd.read_parquet(real_hms / "train_eegs" / f"{int(rid)}.parquet")
        x = df[HMS_EEG_CHANNELS].to_numpy(np.float32).T
        expect = fill_nan(apply_montage(x, HMS_EEG_CHANNELS, "double_banana"), "interp")
        assert n == x.shape[1]
        np.testing.assert_array_equal(real_raw.eeg[start : start + n].T, expect)


@pytest.mark.parametrize("montage", ["double_banana", "double_banana_central", "raw"])
def test_montage_reader_equals_numpy_montage(synth_src: Path, tmp_path: Path, montage: str) -> None:
    # hms.read_eeg_montage (what prepare reads) = apply_montage(read_eeg(...)).T, with NaN, nulls, float64 and ints
    src = next((synth_src / "train_eegs").glob("*.parquet"))
    df = pd.read_parquet(src)
    df.iloc[5:9, 3] = np.nan  # Fp1... a NaN stretch in one electrode
    frames = {"nan": df, "f64": df.astype("float64"), "ints": df.fillna(0).round().astype("int32"),
              "reordered": df[df.columns[::-1]]}
    for name, frame in frames.items():
        p = tmp_path / f"{name}.parquet"
        frame.to_parquet(p, index=False, row_group_size=3000)
        got = hms.read_eeg_montage(p, montage)
        expect = apply_montage(hms.read_eeg(p), HMS_EEG_CHANNELS, montage).T
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == expect.shape
        np.testing.assert_array_equal(got, expect)
    nulls = pa.Table.from_pandas(df.fillna(0.0), preserve_index=False)  # NaN only where the nulls are
    nulls = nulls.set_column(0, nulls.column_names[0], pa.array([None] * 7 + [1.0] * (len(df) - 7), pa.float32()))
    pq.write_table(nulls, tmp_path / "nulls.parquet")
    got = hms.read_eeg_montage(tmp_path / "nulls.parquet", montage)
    assert np.isnan(got[:7]).any() and not np.isnan(got[7:]).any()
    np.testing.assert_array_equal(got, apply_montage(hms.read_eeg(tmp_path / "nulls.parquet"), HMS_EEG_CHANNELS, montage).T)


class _TwoRates(DatasetAdapter):
    """Two recordings, sampled at 100 and 200 Hz (4 s each): a cache needs eeg.fs to hold both."""

    name, task, classes = "two_rates_test", "seizure", ("background", "seizure")

    def table(self, cfg: DataConfig) -> pd.DataFrame:
        return pd.DataFrame({"sample_id": [0, 1], "recording_id": ["a", "b"], "group": ["a", "b"], "start_s": 0.0,
                             "duration_s": 2.0, "background_vote": 1.0, "seizure_vote": 0.0, "n_votes": 1})

    def channels(self, cfg: DataConfig) -> list[str]:
        return ["C3"]

    def path(self, cfg: DataConfig, recording_id: str) -> Path:
        return Path(cfg.data_dir) / f"{recording_id}.npy"

    def read(self, cfg: DataConfig, recording_id: str) -> tuple[np.ndarray, float]:
        fs = 100.0 if recording_id == "a" else 200.0
        return np.sin(np.arange(int(4 * fs), dtype=np.float32))[None], fs


def test_a_second_sampling_rate_stops_the_build_unless_eeg_fs(tmp_path: Path) -> None:
    if "two_rates_test" not in registered():
        register(_TwoRates())
    for rid in "ab":
        np.save(tmp_path / f"{rid}.npy", np.zeros(1))  # present on disk; the adapter makes the signal
    eeg = dict(montage="raw", bandpass=None, clip_uv=None)
    cfg = DataConfig(name="mixed", dataset="two_rates_test", data_dir=str(tmp_path), cache_root=str(tmp_path / "c"),
                     workers=1, eeg=EEGParams(**eeg))
    with pytest.raises(DataError, match=r"different sampling rates \(100, 200 Hz, e\.g\. .*b\.npy\): set eeg\.fs"):
        prepare(cfg, progress=False)
    no_leftovers(tmp_path / "c", "mixed")
    cache = Cache(prepare(dataclasses.replace(cfg, eeg=EEGParams(**eeg, fs=100.0)), progress=False))
    assert cache.fs == 100.0 and list(cache.recordings.eeg_len) == [400, 400]
