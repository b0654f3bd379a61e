"""Caches notice changed inputs, verify their files, build one at a time, and leave no orphan workers."""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import copy_hms_subset

from hbac.cache import open_cache
from hbac.cache.build import prepare, stale_dirs
from hbac.cache.integrity import verify_cache
from hbac.cache.lock import cache_lock
from hbac.cache.reader import Cache, cache_status
from hbac.config import DataConfig
from hbac.datasets import hms
from hbac.errors import CacheError, DataError


def _cfg(data_dir: Path, cache_root: Path, name: str = "c", **kw) -> DataConfig:
    return DataConfig(name=name, data_dir=str(data_dir), cache_root=str(cache_root), workers=kw.pop("workers", 1), **kw)


@pytest.fixture()
def small(synth_hms: Path, tmp_path: Path) -> Path:
    """A private 4-EEG copy of the synthetic HMS folder (tests edit it)."""
    return copy_hms_subset(synth_hms, tmp_path / "hms", 4)


def test_edited_train_csv_rebuilds_the_cache(small: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(small, tmp_path / "cache")
    cache = Cache(prepare(cfg, progress=False))
    assert cache.meta["inputs"]["n_files"] > 0 and cache_status(cfg) == "ok"
    train = pd.read_csv(small / "train.csv")
    vote_cols = [c for c in train.columns if c.endswith("_vote")]
    train.loc[0, vote_cols] = 0
    train.loc[0, vote_cols[0]] = 99  # a relabelled row
    train.to_csv(small / "train.csv", index=False)
    assert cache_status(cfg) == "changed"
    caplog.set_level(logging.INFO, logger="hbac.cache.build")
    new = Cache(prepare(cfg, progress=False))
    assert "input data changed" in caplog.text and "sample table" in caplog.text
    lid = train.label_id[0]
    before = cache.samples.set_index("label_id").loc[lid, vote_cols].to_numpy(np.float64)
    after = new.samples.set_index("label_id").loc[lid, vote_cols].to_numpy(np.float64)
    assert not np.allclose(before, after) and after[0] == after.max()  # the cache serves the new label
    assert new.meta["inputs"]["fingerprint"] != cache.meta["inputs"]["fingerprint"]


def test_touched_signal_file_rebuilds_and_unchanged_is_reused(small: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(small, tmp_path / "cache")
    path = prepare(cfg, progress=False)
    stamp = (path / "meta.json").stat().st_mtime_ns
    caplog.set_level(logging.INFO, logger="hbac.cache.build")
    prepare(cfg, progress=False)
    assert (path / "meta.json").stat().st_mtime_ns == stamp and "reusing" in caplog.text
    f = hms.eeg_path(small, int(pd.read_csv(small / "train.csv").eeg_id.iloc[0]))
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))  # a re-downloaded (or fixed) file
    caplog.clear()
    prepare(cfg, progress=False)
    assert "signal files changed" in caplog.text and (path / "meta.json").stat().st_mtime_ns != stamp


def test_the_same_files_through_a_linked_folder_reuse_the_cache(small: Path, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The data folder reached through a symlink (a Kaggle input, a test's linked set) is the same input: the
    cache is reused, not rebuilt; a touched file behind the link still rebuilds it."""
    path = prepare(_cfg(small, tmp_path / "cache"), progress=False)
    stamp = (path / "meta.json").stat().st_mtime_ns
    (tmp_path / "input").mkdir()
    linked = tmp_path / "input" / "hms-harmful-brain-activity-classification"
    linked.symlink_to(small, target_is_directory=True)
    cfg = _cfg(linked, tmp_path / "cache")
    assert cache_status(cfg) == "ok"
    caplog.set_level(logging.INFO, logger="hbac.cache.build")
    assert prepare(cfg, progress=False) == path and "reusing" in caplog.text
    assert (path / "meta.json").stat().st_mtime_ns == stamp
    f = hms.spec_path(linked, int(pd.read_csv(small / "train.csv").spectrogram_id.iloc[0]))
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert cache_status(cfg) == "changed"


def test_allow_missing_is_not_in_the_key_and_skips_are_recorded(small: Path, tmp_path: Path) -> None:
    f = next((small / "train_eegs").iterdir())
    f.unlink()  # a partial download
    cfg = _cfg(small, tmp_path / "cache")
    with pytest.raises(DataError, match="--allow-missing"):
        prepare(cfg, progress=False)
    built = Cache(prepare(dataclasses.replace(cfg, allow_missing=True), progress=False))
    assert built.meta["skipped"]["missing_recording"] > 0 and built.meta["build"]["allow_missing"] is True
    assert cfg.hash() == dataclasses.replace(cfg, allow_missing=True, skip_unreadable=True).hash()
    # a plain `train` (allow_missing false) reuses the cache built with skips instead of failing
    assert cache_status(cfg) == "ok"
    assert len(open_cache(cfg, progress=False)) == len(built)


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_half_written_cache_is_never_trusted(small: Path, tmp_path: Path, damage: str) -> None:
    cfg = _cfg(small, tmp_path / "cache")
    path = prepare(cfg, progress=False)
    assert verify_cache(path) is None
    eeg = path / "eeg.npy"
    if damage == "truncate":
        with open(eeg, "r+b") as fh:
            fh.truncate(eeg.stat().st_size // 2)
    else:
        eeg.unlink()
    assert "eeg.npy" in verify_cache(path)
    assert cache_status(cfg) == "incomplete"
    with pytest.raises(CacheError, match="incomplete"):
        open_cache(cfg, build=False)
    cache = open_cache(cfg, progress=False)  # rebuilt, whole again
    assert verify_cache(cache.path) is None and cache.eeg.shape[0] > 0


def test_cache_root_that_is_a_file_is_named(tmp_path: Path) -> None:
    """cache_root pointing at a file: a CacheError saying so (was mkdir's bare '[Errno 17] File exists')."""
    root = tmp_path / "cache"
    root.write_text("not a folder")
    with pytest.raises(CacheError, match=rf"cache_root {root} is a file, not a folder"):
        with cache_lock(root / "c"):
            pass


def test_second_build_waits_or_gives_up_clearly(small: Path, tmp_path: Path) -> None:
    cfg = _cfg(small, tmp_path / "cache")
    with cache_lock(cfg.cache_dir()):
        with pytest.raises(CacheError, match=r"being built by process \d+.*gave up"):
            prepare(cfg, progress=False, lock_timeout_s=0.3)
    assert stale_dirs(cfg.cache_dir()) == [] and not cfg.cache_dir().exists()
    # a waiting build proceeds once the lock is released
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with cache_lock(cfg.cache_dir()):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    path = prepare(cfg, progress=False, lock_timeout_s=30)
    t.join()
    assert verify_cache(path) is None


def _write_yaml(tmp_path: Path, data_dir: Path, workers: int) -> Path:
    p = tmp_path / "data.yaml"  # filtered per recording: a process pool (an HMS cache filtered per window uses threads)
    p.write_text(f"name: c\ndata_dir: {data_dir}\ncache_root: {tmp_path / 'cache'}\nworkers: {workers}\neeg: {{filter_on: recording}}\n")
    return p


def _prepare_proc(repo_root: Path, cfg_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(repo_root / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "hbac", "prepare", str(cfg_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_builds_end_with_one_valid_cache(small: Path, tmp_path: Path, repo_root: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A `prepare` process starts building; this process's prepare of the same cache, started as soon as the
    other says it is building (under its lock), waits for it and reuses its cache."""
    proc = _prepare_proc(repo_root, _write_yaml(tmp_path, small, 1))
    cache_dir = tmp_path / "cache" / "c"
    err = []
    for line in proc.stderr:  # the other process holds the lock from before this line until its cache is complete
        err.append(line)
        if f"building cache {cache_dir}" in line:
            break
    caplog.set_level(logging.INFO, logger="hbac.cache")
    assert prepare(_cfg(small, tmp_path / "cache"), progress=False) == cache_dir  # the same cache as data.yaml's
    err.append(proc.communicate(timeout=300)[1])
    assert proc.returncode == 0, "".join(err)[-2000:]
    assert verify_cache(cache_dir) is None and stale_dirs(cache_dir) == []
    assert "building cache" in "".join(err) and "reusing cache" in caplog.text  # one build: the second reused the first's


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killed_prepare_leaves_no_workers(synth_hms: Path, tmp_path: Path, repo_root: Path, how: int) -> None:
    proc = _prepare_proc(repo_root, _write_yaml(tmp_path, synth_hms, 2))
    kids: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(kids) < 2:
        kids = _children(proc.pid)
        time.sleep(0.01)
    if len(kids) < 2:
        proc.kill()
        pytest.fail(f"prepare ended (rc {proc.poll()}) before its 2 workers were seen")
    os.kill(proc.pid, how)
    proc.wait(timeout=60)
    gone, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, f"orphaned prepare workers after {signal.Signals(how).name}: {[p.pid for p in alive]}"
    if how == signal.SIGTERM:  # cleaned up like Ctrl-C: no temp folder, a one-line message
        assert proc.returncode == 143, proc.stderr.read()[-2000:]
        assert stale_dirs(tmp_path / "cache" / "c") == [] and not (tmp_path / "cache" / "c").exists()
