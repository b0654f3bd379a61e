"""Build an on-disk cache from raw files (format: docs/internals.md, "Cache").

`prepare(cfg)` is generic over the adapter protocol (`hbac.datasets.DatasetAdapter`, looked
up in the registry by `cfg.dataset`): `table`, `channels`, `path`, `read` and `missing_reason`.

Pipeline (`prepare`): plan (`plan_rows`: sample table, missing-file check) → `allocate` (`eeg.npy`
and each extra input's `<stem>.npy` started with a header for 0 rows) → `write` (one pass: every
recording and extra-input file read, preprocessed and appended to its store by the workers (threads
or a process pool: `uses_threads`), each claiming its rows from a shared counter once it knows its length, so no file is
opened twice; one file in memory per worker; the parent only sees small per-file results) →
`check_windows` (the cache's rate, window bounds, from the lengths the reads gave) → `finish`
(each store's header rewritten in place with its row count) → `index` (CSVs, `meta.json` last).
With one worker the stores are in table order; with a pool, in the order files finish (the
index says where each one is).
Extra inputs (e.g. the HMS Kaggle spectrogram) are declared by the adapter (`ExtraInput`).
Everything is built in a temp folder renamed into place at the end (`hbac.io.atomic_dir`).
"""
from __future__ import annotations

import contextlib
import glob
import io
import logging
import multiprocessing as mp
import os
import shutil
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hbac.cache.format import CACHE_FORMAT, PREPARE_HINT
from hbac.cache.health import (
    HEALTH_COLUMNS,
    channel_health,
    describe,
    example_text,
    over_limit,
)
from hbac.cache.health import summary as health_summary
from hbac.cache.integrity import input_changes, input_fingerprint, verify_cache
from hbac.cache.lock import cache_lock
from hbac.config import DataConfig, check_band_vs_rate, to_dict
from hbac.datasets import DatasetAdapter, ExtraInput, adapter_for, adapter_modules
from hbac.errors import CacheError, DataError
from hbac.io import (
    atomic_dir,
    atomic_write_csv,
    atomic_write_json,
    disk_full_error,
    is_disk_full,
    read_json,
)
from hbac.procs import PARENT_ENV, die_with_parent, one_blas_thread, sigterm_as_interrupt, watch_process
from hbac.signals.filters import (
    preprocess,
)

log = logging.getLogger(__name__)


_EXAMPLES = 3  # missing files named in an error message
IN_PROCESS_FILES = 64  # with `workers: 0` (auto), fewer files than this are prepared without a process pool
# From this many files a process pool prepares even a thread-safe adapter's files (`uses_threads`): two threads'
# polars reads share one process (and polars' thread pool) and together read about 1.5x slower than two processes
# with one polars thread each, which pays back the pool's start once a build is large. HMS, 2 workers, real
# files (benchmarks/prepare.py's sets, interleaved runs): 400 files 2.0/2.0 s in threads against 3.5/3.3 s in
# processes; 1,000 files 4.8/5.2/4.7 s against 4.5/4.9/5.0 s, a tie; 1,600 files 8.7/8.1/6.8 s against 7.0/7.4/6.3 s;
# 2,500 files 12.0/12.0 s against 8.1/10.6 s; the competition's 28,227 files (--full-scale) 167 s against 129 s.
THREADS_MAX_FILES = 1000
_FD_LOCK = threading.Lock()  # worker threads open each store once


def resampled_length(n_times: int, fs_in: float, fs_out: Optional[float]) -> int:
    """Samples that `hbac.signals.resample` returns for `n_times` input samples (same ratio arithmetic)."""
    if not fs_out or abs(fs_out - fs_in) <= 1e-9:
        return int(n_times)
    f = Fraction(float(np.round(fs_out / fs_in, 6))).limit_denominator(1000)
    return -(-int(n_times) * f.numerator // f.denominator)  # resample_poly: ceil(n * up / down)


def stale_dirs(out: Path) -> list[Path]:
    """Leftovers of interrupted builds of cache `out`: `.<name>.*.tmp` and `.<name>.old.*` folders."""
    pat = glob.escape(f".{out.name}.")
    found = glob.glob(str(out.parent / f"{pat}*.tmp")) + glob.glob(str(out.parent / f"{pat}old.*"))
    return sorted(Path(p) for p in found if Path(p).is_dir())


def _clean_stale(out: Path) -> None:
    for d in stale_dirs(out):
        log.warning("removing %s, left by an interrupted cache build", d)
        shutil.rmtree(d, ignore_errors=True)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _param_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'eeg.bandpass: [0.5, 20.0] → None, …' for the keys that differ."""
    a, b = _flat(old or {}), _flat(new)
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))
    return ", ".join(f"{k}: {a.get(k, '<absent>')!r} → {b.get(k, '<absent>')!r}" for k in keys) or "(format change)"


def _chmod_like_umask(path: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o777 & ~mask)


def _existing(paths: Sequence[Path]) -> np.ndarray:
    """(n,) bool: which files exist; one directory listing per parent folder instead of n stats."""
    listing: dict[Path, set[str]] = {}
    out = np.zeros(len(paths), dtype=bool)
    for i, p in enumerate(paths):
        parent = p.parent
        if parent not in listing:
            listing[parent] = set(os.listdir(parent)) if parent.is_dir() else set()
        out[i] = p.name in listing[parent]
    return out


_W: dict[str, Any] = {}


def _init_worker(cfg: DataConfig, tmp: str, limit_threads: bool, parent_pid: Optional[int] = None,
                 rows: Optional[dict[str, Any]] = None) -> None:
    """Pool initializer: die with `prepare` (kill -9 included); remember the config, the output folder and
    the stores' shared row counters (`_reserve`); one BLAS thread."""
    if parent_pid is not None:
        die_with_parent()  # Linux: the kernel kills this worker when its parent (the forkserver, or prepare) dies
        watch_process(parent_pid)  # and a thread that notices within a second that `prepare` is gone
    _W.clear()
    adapter = adapter_for(cfg)
    _W.update(cfg=cfg, tmp=Path(tmp), adapter=adapter, extras={x.name: x for x in adapter.extras(cfg)},
              channels=list(adapter.channels(cfg)), fds={}, rows=rows or {})
    if limit_threads:
        ctx = one_blas_thread()
        ctx.__enter__()  # for the life of the worker process
        _W["blas"] = ctx


def _reserve(kind: str, n: int) -> int:
    """The first of `n` rows claimed at the end of store `kind`: sizes come from the read itself, so a
    file's slice is claimed when it is ready to write (a counter shared by the workers, under its lock)."""
    counter = _W["rows"][kind]
    with counter.get_lock():
        row0 = int(counter.value)
        counter.value = row0 + n
    return row0


def _close_worker() -> None:
    for fd in _W.get("fds", {}).values():
        os.close(fd)
    _W.clear()


def _fd(name: str) -> int:
    fds = _W["fds"]
    if name not in fds:
        with _FD_LOCK:
            if name not in fds:
                fds[name] = os.open(_W["tmp"] / name, os.O_WRONLY)
    return fds[name]


def _pwrite(fd: int, arr: np.ndarray, offset: int) -> None:
    """Write a C-contiguous array's bytes at `offset` (loops: pwrite may write less than asked)."""
    mv = memoryview(np.ascontiguousarray(arr)).cast("B")
    done = 0
    while done < len(mv):
        done += os.pwrite(fd, mv[done:], offset + done)


@contextlib.contextmanager
def _naming(path: Path, what: str) -> Iterator[None]:
    """Re-raise any failure on one file as a picklable DataError whose message names the file."""
    try:
        yield
    except DataError as e:
        if str(path) in str(e):
            raise
        raise DataError(f"{path}: {e}") from e
    except OSError as e:
        if is_disk_full(e, _W.get("tmp", ".")):  # the cache being written filled the disk: not this input's fault
            raise disk_full_error(e, _W["cfg"].cache_dir() if "cfg" in _W else "the cache") from e
        raise DataError(f"{path}: {what} failed: {type(e).__name__}: {e}") from e
    except Exception as e:  # any failure on one file is reported with that file's name
        raise DataError(f"{path}: {what} failed: {type(e).__name__}: {e}") from e


def _unreadable(task: tuple, fn: Any) -> tuple:
    """Run one task; with `cfg.skip_unreadable` a DataError becomes ('bad', kind, i, message)."""
    try:
        return fn(task)
    except DataError as e:
        if not _W["cfg"].skip_unreadable:
            raise
        return ("bad", task[0], task[1], str(e))


def _work_task(task: tuple) -> tuple:
    """Read, preprocess and write one recording or one extra-input file into its slice."""
    return _unreadable(task, _work_eeg if task[0] == "eeg" else _work_extra)


def _work_eeg(task: tuple) -> tuple:
    """('eeg', i, rid, header, n_chans, dtype) → ('eeg', i, n_nonfinite, health, dropped, n_rows, fs, row0, unusable).

    health = (all-NaN channels, flat channels, NaN share, report or None) of the montage as read
    (`hbac.cache.health`); with `eeg.bad_channels: drop` a reported recording is not written;
    `unusable` is the adapter's `missing_reason` (then nothing is read).
    """
    cfg, adapter = _W["cfg"], _W["adapter"]
    _, i, rid, header, n_chans, dtype = task
    path = Path(adapter.path(cfg, rid))
    with _naming(path, f"preparing recording {rid!r}"):
        reason = adapter.missing_reason(cfg, rid)
        if reason is not None:  # unusable (e.g. a montage channel absent): treated like a missing file
            return ("eeg", i, 0, None, False, 0, 0.0, -1, str(reason))
        x, fs = adapter.read(cfg, rid)
        fs = float(fs)
        if x.shape[0] != n_chans:
            raise DataError(f"{path}: {x.shape[0]} channels after the montage, expected {n_chans}")
        e = cfg.eeg
        nan_ch, flat_ch, nan_frac = channel_health(x)
        report = describe(nan_ch, flat_ch, _W["channels"]) if over_limit(nan_ch, flat_ch, e.bad_channels_max) else None
        health = (len(nan_ch), len(flat_ch), nan_frac, report)
        if report and e.bad_channels == "error":
            raise DataError(f"{path}: {report}; eeg.bad_channels is 'error' (set it to 'zero' or 'drop' to go on)")
        if report and e.bad_channels == "drop":
            return ("eeg", i, 0, health, True, 0, fs, -1, None)  # not written: its rows are left out
        per_rec = e.filter_on == "recording"  # `window`: the model filters each window (DataConfig.window_filter)
        if per_rec and e.bandpass:
            check_band_vs_rate(e.bandpass, fs, "eeg.bandpass", f"{path} is sampled at {fs:g} Hz")
        n_in = x.shape[1]
        y = preprocess(x, fs, nan=e.nan, band=e.bandpass if per_rec else None, notch_hz=e.notch_hz if per_rec else None,
                       clip_uv=e.clip_uv, standardize=e.standardize, fs_out=e.fs,
                       ica=(e.ica_eog_corr, e.ica_emg_ratio) if e.ica else None, channels=_W["channels"] if e.ica else (),
                       overwrite=True)  # x is this read's own array
        del x
        if y.shape[1] != resampled_length(n_in, fs, e.fs):
            raise DataError(f"{path}: {y.shape[1]} samples after preprocessing, expected {resampled_length(n_in, fs, e.fs)}")
        out = np.ascontiguousarray(y.T, dtype=dtype)  # time-major (n_times, n_chans): no copy for a time-major read
        del y
        n_bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        row0 = _reserve("eeg", out.shape[0])
        _pwrite(_fd("eeg.npy"), out, header + row0 * out.shape[1] * out.itemsize)
    return ("eeg", i, n_bad, health, False, out.shape[0], fs, row0, None)


def _work_extra(task: tuple) -> tuple:
    """(name, i, file id, header, offsets) → (name, i, window start rows (k,) in the file, time0, n_rows, row0)."""
    kind, i, key, header, offsets = task
    x = _W["extras"][kind]
    path = Path(x.path(_W["cfg"], key))
    with _naming(path, f"preparing {x.name} {key!r}"):
        times, vals = x.read(path)
        if vals.ndim != 2 or vals.shape[1] != x.width or len(times) != len(vals):
            raise DataError(f"{path}: values of shape {vals.shape} with {len(times)} times, expected (n, {x.width}) with n times")
        if len(times) > 1 and np.any(np.diff(times) <= 0):
            raise DataError(f"{path}: 'time' column is not increasing")
        row0 = _reserve(kind, len(vals))
        _pwrite(_fd(f"{x.stem}.npy"), np.asarray(vals, dtype=np.float32), header + row0 * x.width * 4)
        rel = np.searchsorted(times, offsets, side="left")  # a window starts at the first row with time ≥ its offset
        time0 = float(times[0]) if len(times) else float("nan")
    return (kind, i, rel.astype(np.int64), time0, len(vals), row0)


def _call_batch(fn: Any, tasks: list[tuple]) -> list[tuple]:
    """Run a batch of tasks in one worker call (amortises inter-process overhead on tiny tasks)."""
    return [fn(t) for t in tasks]


def _describe(tasks: list[tuple]) -> str:
    keys = [f"{t[0]} {t[2]}" for t in tasks[:5]]
    return ", ".join(keys) + (f" (+{len(tasks) - 5} more)" if len(tasks) > 5 else "")


def _run(tasks: list[tuple], fn: Any, pool: Optional[Executor], n_procs: int, desc: str, progress: bool) -> Iterator[tuple]:
    """Map `fn` over tasks (in the pool, or in-process when pool is None) with a progress bar; yields results."""
    with tqdm(total=len(tasks), desc=desc, unit="file", disable=not progress or not tasks, smoothing=0.05) as bar:
        if pool is None:
            for t in tasks:
                yield fn(t)
                bar.update()
            return
        # batches amortise a process pool's inter-process overhead; threads take one file at a time
        chunk = 1 if isinstance(pool, ThreadPoolExecutor) else max(1, min(16, len(tasks) // (8 * n_procs)))
        batches = {pool.submit(_call_batch, fn, tasks[k : k + chunk]): tasks[k : k + chunk] for k in range(0, len(tasks), chunk)}
        for fut in as_completed(batches):
            try:
                results = fut.result()
            except BrokenProcessPool as e:  # a worker was killed (e.g. by the OOM killer) or crashed
                raise RuntimeError(f"a prepare worker process died while working on {_describe(batches[fut])}: {e}") from e
            for r in results:
                yield r
            bar.update(len(results))


def _pool_context(filters: bool) -> mp.context.BaseContext:
    """forkserver (preloading this module, the registered adapters' modules and, when the workers `filters`,
    scipy.signal) where available, else spawn."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        os.environ[PARENT_ENV] = str(os.getpid())  # the server checks it is still this process's child
        # the guard first (light, top-level): the server dies with this process, even during the heavy imports
        # scipy.signal when the workers may filter, resample or run ICA: the filters import it on first use (1.7 s,
        # kept out of submit.py's start-up), which each worker of each pool would otherwise pay again; a large HMS
        # build (parquet reads, numpy passes only) does not need it, and the server starts about 1 s sooner
        preload = ["hbac._forkserver_guard", __name__, *(["scipy.signal"] if filters else []), *adapter_modules()]
        ctx.set_forkserver_preload(preload)  # a name it cannot import is skipped
        return ctx
    return mp.get_context("spawn")


def _light_work(cfg: DataConfig, adapter: DatasetAdapter) -> bool:
    """Whether the workers' reads release the GIL (`DatasetAdapter.reads_release_gil`: HMS parquet through polars) and
    the per-recording work is numpy passes only (no per-recording band-pass or notch, ICA or resampling, which hold
    the GIL for much of their time and need scipy.signal)."""
    e = cfg.eeg
    per_recording_filter = e.filter_on == "recording" and bool(e.bandpass or e.notch_hz)
    return bool(adapter.reads_release_gil) and not (per_recording_filter or e.ica or e.fs is not None)


@contextlib.contextmanager
def _main_not_rerun() -> Iterator[None]:
    """While the pool starts its workers, hide the parent's `__main__` from multiprocessing: forkserver
    children would otherwise import the user's script again (running it whole when it has no
    `if __name__ == "__main__":` guard). The workers need nothing from it: their functions live here
    and plugin adapters are imported by module."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def uses_threads(cfg: DataConfig, adapter: DatasetAdapter, n_files: int = 0) -> bool:
    """Whether `prepare` runs its workers for `n_files` files as threads of this process rather than a process pool.

    Threads when the adapter's reads release the GIL and the per-recording work is numpy passes
    only (`_light_work`), and the build has fewer than `THREADS_MAX_FILES` files. Threads start in
    microseconds and share the parent's imports; a process pool costs a second or two (its server
    imports numpy, polars, pandas and scipy) and pickles every result, but its workers read faster: it
    wins on a large build.
    """
    return _light_work(cfg, adapter) and n_files < THREADS_MAX_FILES


@contextlib.contextmanager
def _workers(plan: "Plan", tmp: Path) -> Iterator[tuple[Optional[Executor], dict[str, Any]]]:
    """(the executor `plan.pool` asks for: threads, a process pool (forkserver where available) set up with
    `_init_worker`, or None = in this thread; each store kind's shared row counter)."""
    cfg, n, kinds = plan.cfg, plan.n_workers, ["eeg"] + [x.name for x in plan.extras]
    if plan.pool != "processes":
        rows = {k: mp.Value("q", 0) for k in kinds}  # its lock serves threads as well as processes
        _init_worker(cfg, str(tmp), limit_threads=False, rows=rows)
        pool = ThreadPoolExecutor(n, thread_name_prefix="prepare") if n > 1 else None
        try:
            with one_blas_thread():
                yield pool, rows
        finally:
            if pool is not None:  # an error or Ctrl-C: the threads finish the file they are on, start no other
                pool.shutdown(wait=True, cancel_futures=True)
            _close_worker()
        return
    # forkserver, not fork: a forked child of a process whose polars/BLAS thread pools are running can
    # deadlock (polars warns about fork). The server preloads this module (numpy, polars, pandas; scipy.signal
    # when the workers may need it; no torch), so each worker starts in milliseconds with nothing but what prepare needs.
    ctx = _pool_context(filters=not _light_work(cfg, plan.adapter))  # EDF reads may resample
    rows = {k: ctx.Value("q", 0) for k in kinds}  # shared memory, handed to each worker as it starts
    pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(cfg, str(tmp), True, os.getpid(), rows))
    try:
        with _main_not_rerun():
            yield pool, rows
    except BaseException:  # an error, Ctrl-C or SIGTERM: end the workers now rather than after their current file
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True, cancel_futures=True)


def _mask(bad: np.ndarray, msg: str, key: str, skipped: dict[str, int], allowed: bool) -> np.ndarray:
    """`bad` (rows to drop, counted under `key`) when `allowed`; raises DataError(msg) otherwise."""
    bad = np.asarray(bad, dtype=bool)
    if not bad.any():
        return bad
    if not allowed:
        raise DataError(msg)
    skipped[key] = skipped.get(key, 0) + int(bad.sum())
    log.warning("%s; skipping them", msg)
    return bad


@dataclass
class _Files:
    """One kind of cached file: the recordings (kind 'eeg') or the files of one extra input."""

    kind: str
    ids: np.ndarray  # (n_files,) file ids, in order of first use
    pos: np.ndarray  # (n_rows,) position in `ids` of each table row
    n: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (n_files,) rows in the cache (set by the write)
    fs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_files,) native Hz (eeg only; 0: not read)
    start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (n_files,) first row in the store (-1: none)
    bad: dict[int, str] = field(default_factory=dict)  # file position → read error (skip_unreadable)

    @classmethod
    def of(cls, kind: str, column: pd.Series) -> "_Files":
        ids = pd.unique(column)
        n = len(ids)
        return cls(kind, ids, pd.Index(ids).get_indexer(column), np.zeros(n, np.int64), np.zeros(n), np.full(n, -1, np.int64))


@dataclass
class Plan:
    """What a build will cache: the sample table and, per kind of file, which files and how long."""

    cfg: DataConfig
    adapter: DatasetAdapter
    table: pd.DataFrame  # rows still to cache (index: row of the adapter's table)
    channels: list[str]
    extras: list[ExtraInput]  # enabled extra inputs whose id column the table has
    n_rows_in: int
    skipped: dict[str, int] = field(default_factory=dict)
    files: dict[str, _Files] = field(default_factory=dict)  # "eeg" and each extra's name
    fs: float = 0.0  # Hz of the cached EEG
    start: Optional[np.ndarray] = None  # (n_rows,) window start, samples from its recording's start
    n_workers: int = 1

    @property
    def pool(self) -> str:
        """How the workers run: "threads", "processes" or "none" (in this thread)."""
        if self.n_workers <= 1:
            return "none"
        return "threads" if uses_threads(self.cfg, self.adapter, self.n_files) else "processes"

    @property
    def n_files(self) -> int:
        """Recording and extra-input files to read (set with `files`)."""
        return sum(len(f.ids) for f in self.files.values())

    def rows_using(self, files: dict[str, Sequence[int]]) -> np.ndarray:
        """(n_rows,) bool: the rows that use any of these files (kind → file positions)."""
        rows = np.zeros(len(self.table), dtype=bool)
        for kind, pos in files.items():
            if len(pos):
                rows |= np.isin(self.files[kind].pos, list(pos))
        return rows

    def count_workers(self) -> int:
        """Workers for this build: `cfg.workers` (0 = all cores), at most one per file; few files on auto
        with a process pool: in-process."""
        n_files = self.n_files
        # a process pool costs a second or two to start: with workers on auto, a few files (a test set,
        # a tiny demo) are read in-process; threads cost nothing to start; an explicit `workers: N` is obeyed
        if not self.cfg.workers and n_files < IN_PROCESS_FILES and not uses_threads(self.cfg, self.adapter, n_files):
            return 1
        return max(1, min(self.cfg.workers or os.cpu_count() or 1, n_files))


def _rebuild_reason(cfg: DataConfig, out: Path, inputs: dict[str, Any], force: bool) -> Optional[str]:
    """Why cache `out` must be (re)built for `cfg` with these inputs, or None to reuse it."""
    meta_path = out / "meta.json"
    if not meta_path.exists():
        return f"{out} has no meta.json (an interrupted or failed build): rebuilding" if out.exists() else f"building cache {out}"
    try:
        old = read_json(meta_path)
    except (OSError, ValueError) as e:
        return f"{meta_path} is unreadable ({e}): rebuilding"
    h = cfg.hash()
    if force:
        return f"rebuilding cache {out} (force)"
    if old.get("hash") != h or old.get("format") != CACHE_FORMAT:
        return (
            f"parameters changed for cache {out} (hash {old.get('hash')} → {h}): rebuilding; "
            f"{_param_changes(old.get('params', {}), cfg.hash_params())}"
        )
    old_inputs = old.get("inputs") or {}
    if old_inputs.get("fingerprint") != inputs["fingerprint"]:
        return f"input data changed since cache {out} was built ({input_changes(old_inputs, inputs)}): rebuilding"
    problem = verify_cache(out, old)
    if problem:
        return f"cache {out} is incomplete ({problem}): rebuilding"
    return None


def plan_rows(cfg: DataConfig, table: Optional[pd.DataFrame] = None) -> Plan:
    """The adapter's sample table (read here unless given), less the rows whose files are absent (DataError unless `allow_missing`)."""
    adapter = adapter_for(cfg)
    table = adapter.table(cfg).reset_index(drop=True) if table is None else table
    extras = [x for x in adapter.extras(cfg) if x.id_column in table.columns]
    plan = Plan(cfg, adapter, table, list(adapter.channels(cfg)), extras, len(table))
    kinds = [("recording", "recording_id", lambda f: adapter.path(cfg, f))]
    kinds += [(x.label or x.name, x.id_column, lambda f, x=x: x.path(cfg, f)) for x in extras]
    bad = np.zeros(len(table), dtype=bool)
    counts: list[tuple[str, int, int]] = []  # (label, files absent, rows newly affected)
    examples: list[Path] = []
    for i, (label, col, path) in enumerate(kinds):
        ids = pd.unique(table[col])
        paths = [Path(path(f)) for f in ids]
        ok = _existing(paths)
        missing = ~ok[pd.Index(ids).get_indexer(table[col])]
        counts.append((label, len(pd.unique(table.loc[missing, col])), int((missing & ~bad).sum())))
        absent = [p for p, o in zip(paths, ok) if not o]
        examples += absent[:_EXAMPLES] if i == 0 else absent[: max(0, _EXAMPLES - len(examples)) or 1]
        bad |= missing
    if bad.any():
        what = ", ".join(f"{n} {label} file(s)" for label, n, _ in counts)
        msg = f"{int(bad.sum())} of {len(table)} rows reference missing files ({what} absent), e.g. {', '.join(map(str, examples))}"
        if not cfg.allow_missing:
            raise DataError(f"{msg}; pass --allow-missing to skip them")
        plan.skipped.update({f"missing_{label}": n_rows for label, _, n_rows in counts})
        log.warning("%s; skipping them (allow_missing)", msg)
        plan.table = table.loc[~bad]
    plan.files = {"eeg": _Files.of("eeg", plan.table["recording_id"])}
    plan.files.update({x.name: _Files.of(x.name, plan.table[x.id_column]) for x in extras})
    plan.n_workers = plan.count_workers()
    return plan


def check_windows(plan: Plan, done: "Written") -> None:
    """After the write (sizes come from the reads): the cache's rate, the window bounds; rows of windows
    outside their recording are dropped (`allow_missing`) or a DataError; files no row uses are left unindexed."""
    cfg, table, rec = plan.cfg, plan.table, plan.files["eeg"]
    # one native rate unless eeg.fs resamples them: `_eeg_result` stopped the build at a second one
    used_fs = np.unique(rec.fs[np.unique(rec.pos[done.keep_rows])]) if done.keep_rows.any() else np.zeros(0)
    fs = plan.fs = float(cfg.eeg.fs or (used_fs[0] if len(used_fs) else plan.adapter.fs or 0.0))
    if cfg.eeg.bandpass and len(used_fs):  # the band-pass runs at the native rate, before any resampling
        check_band_vs_rate(cfg.eeg.bandpass, float(used_fs.min()), "eeg.bandpass", f"recordings in {cfg.data_dir} are sampled at {used_fs.min():g} Hz")
    plan.start = np.rint(table["start_s"].to_numpy(np.float64) * fs).astype(np.int64)
    n_win = np.rint(table["duration_s"].to_numpy(np.float64) * fs).astype(np.int64)
    past = done.keep_rows & ((plan.start < 0) | (plan.start + n_win > rec.n[rec.pos]) | (n_win <= 0))
    if past.any():
        j = int(np.argmax(past))
        row = {c: table[c].iloc[j] for c in ("recording_id", "sample_id", "start_s", "duration_s")}  # keeps dtypes
        path = plan.adapter.path(cfg, row["recording_id"])
        t0, end = float(row["start_s"]), float(row["start_s"]) + float(row["duration_s"])
        n_rec = int(rec.n[rec.pos[j]])
        msg = (
            f"{path}: window of sample_id {row['sample_id']} (row {table.index[j]} of the sample table) "
            f"spans {t0:.3f}–{end:.3f} s, outside the recording "
            f"(0–{n_rec / fs:.3f} s, {n_rec} samples at {fs:g} Hz); {int(past.sum())} such row(s)"
        )
        if not cfg.allow_missing:
            msg += "; pass --allow-missing to skip them"
        done.keep_rows &= ~_mask(past, msg, "window_past_end", plan.skipped, cfg.allow_missing)
    if not done.keep_rows.any():
        log.warning("no rows left to cache from %s (%d rows in, skipped %s): the cache is empty", cfg.data_dir, plan.n_rows_in, plan.skipped)
    for kind, f in plan.files.items():  # index only the files a cached row still uses
        used = np.zeros(len(f.ids), dtype=bool)
        used[f.pos[done.keep_rows]] = True
        done.keep_files[kind] &= used


@dataclass
class Layout:
    """Per store kind: its file, width and dtype, the .npy header size; the write tasks."""

    stores: dict[str, tuple[str, int, np.dtype]]  # kind → (file name, width, dtype)
    headers: dict[str, int]
    groups: dict[str, list[np.ndarray]]  # extra → per file, the table rows (positions) it serves
    tasks: list[tuple]
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # set by `finish`


def _npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    """The .npy (v1.0) header of a C-order array; numpy pads it so that the first axis can grow in place."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    return buf.getvalue()


def allocate(plan: Plan, tmp: Path) -> Layout:
    """Start `eeg.npy` and each extra's `<stem>.npy` (a header for 0 rows: the workers append); the write tasks."""
    dtype = np.dtype(plan.cfg.eeg.dtype)
    stores = {"eeg": ("eeg.npy", len(plan.channels), dtype)}
    stores.update({x.name: (f"{x.stem}.npy", x.width, np.dtype(np.float32)) for x in plan.extras})
    lay = Layout(stores, {}, {}, [])
    for kind, (fname, width, dt) in stores.items():
        header = _npy_header(dt, (0, width))
        (tmp / fname).write_bytes(header)
        lay.headers[kind] = len(header)
    rec = plan.files["eeg"]
    lay.tasks = [("eeg", i, r, lay.headers["eeg"], len(plan.channels), dtype.str) for i, r in enumerate(rec.ids)]
    for x in plan.extras:
        f = plan.files[x.name]
        order = np.argsort(f.pos, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(f.pos, minlength=len(f.ids)))[:-1]) if len(f.ids) else []
        lay.groups[x.name] = groups
        offsets = plan.table[x.offset_column].to_numpy(np.float64)
        lay.tasks += [(x.name, i, s, lay.headers[x.name], offsets[groups[i]]) for i, s in enumerate(f.ids)]
    return lay


def finish(lay: Layout, tmp: Path, rows: dict[str, Any]) -> None:
    """Write each store's final header (its row count from the shared counter) over the provisional one."""
    for kind, (fname, width, dt) in lay.stores.items():
        n = int(rows[kind].value)
        header = _npy_header(dt, (n, width))
        if len(header) != lay.headers[kind]:  # cannot happen below 10**21 rows (numpy's growth padding)
            raise CacheError(f"{tmp / fname}: .npy header grew from {lay.headers[kind]} to {len(header)} bytes")
        with open(tmp / fname, "r+b") as fh:
            fh.write(header)
            fh.truncate(len(header) + n * width * dt.itemsize)
        lay.shapes[kind] = (n, width)


@dataclass
class Written:
    """What the workers reported: per extra, each row's window start and each file's first time."""

    rows: dict[str, np.ndarray]  # extra → (n_rows,) first cached row of each window (-1: none)
    time0: dict[str, np.ndarray]  # extra → (n_files,) time of each file's first row
    keep_rows: np.ndarray  # (n_rows,) bool: rows whose files were all written
    keep_files: dict[str, np.ndarray]  # kind → (n_files,) bool
    health: np.ndarray = field(default_factory=lambda: np.zeros((0, len(HEALTH_COLUMNS))))  # (n_recordings, 3) HEALTH_COLUMNS
    reports: dict[Any, str] = field(default_factory=dict)  # recording id → dead-channel report
    unusable: dict[int, str] = field(default_factory=dict)  # recording position → the adapter's missing_reason
    dropped: dict[int, str] = field(default_factory=dict)  # recording position → dead channels (eeg.bad_channels 'drop')
    n_nonfinite: int = 0  # non-finite values written to eeg.npy
    fs0: float = 0.0  # the first recording's rate (Hz)


def write(plan: Plan, lay: Layout, pool: Optional[Executor], progress: bool) -> Written:
    """Read → preprocess → append every file to its store (the heavy part, in the pool); sizes come from the reads."""
    n = len(plan.table)
    out = Written({x.name: np.full(n, -1, np.int64) for x in plan.extras}, {x.name: np.full(len(plan.files[x.name].ids), np.nan) for x in plan.extras},
                  np.ones(n, dtype=bool), {k: np.ones(len(f.ids), dtype=bool) for k, f in plan.files.items()})
    failed: dict[str, dict[int, str]] = {k: {} for k in plan.files}
    out.health = np.zeros((len(plan.files["eeg"].ids), len(HEALTH_COLUMNS)))
    for r in _run(lay.tasks, _work_task, pool, plan.n_workers, f"prepare {plan.cfg.name}", progress):
        if r[0] == "bad":
            failed[r[1]][r[2]] = r[3]
        elif r[0] == "eeg":
            _eeg_result(plan, out, r)
        else:
            kind, i, rel, time0, n_rows, row0 = r
            f = plan.files[kind]
            f.n[i], f.start[i] = n_rows, row0
            out.rows[kind][lay.groups[kind][i]] = row0 + rel
            out.time0[kind][i] = time0
    if out.n_nonfinite:
        log.warning("%d non-finite values in eeg.npy (dtype %s overflow? set eeg.clip_uv)", out.n_nonfinite, plan.cfg.eeg.dtype)
    _drop_rows(plan, out, {"eeg": out.unusable}, "unusable recording file(s)", "unusable_recording", plan.cfg.allow_missing)
    _drop_rows(plan, out, failed, "unreadable file(s)", "unreadable", True)  # only with skip_unreadable: never indexed
    if out.reports:
        log.warning(
            "%d recording(s) with more than %d dead (all-NaN or flat) channel(s), eeg.bad_channels %r: %s",
            len(out.reports), plan.cfg.eeg.bad_channels_max, plan.cfg.eeg.bad_channels, example_text(out.reports),
        )
    _drop_rows(plan, out, {"eeg": out.dropped}, "recording(s) with dead channels", "dead_channels", True)
    for x in plan.extras:
        f = plan.files[x.name]
        end = (f.start + f.n)[f.pos] if len(f.ids) else np.zeros(0, np.int64)
        n_short = int(np.sum((out.rows[x.name] + x.window_rows > end) & out.keep_rows))
        if n_short:
            log.info("%d %s window(s) extend past their file's end: padded with NaN when read", n_short, x.name)
    return out


def _eeg_result(plan: Plan, out: Written, r: tuple) -> None:
    """Record one recording's result; an unusable recording (without `allow_missing`) or a second
    sampling rate (without `eeg.fs`) stops the build as soon as it is seen."""
    _, i, n_bad, health, was_dropped, n_rows, fs, row0, reason = r
    cfg, rec = plan.cfg, plan.files["eeg"]
    if reason is not None:
        out.unusable[i] = reason
        if not cfg.allow_missing:
            _drop_rows(plan, out, {"eeg": {i: reason}}, "unusable recording file(s)", "unusable_recording", False)
        return
    rec.n[i], rec.fs[i], rec.start[i] = n_rows, fs, row0
    out.fs0 = out.fs0 or fs
    if cfg.eeg.fs is None and fs != out.fs0:
        raise DataError(f"recordings in {cfg.data_dir} have different sampling rates ({out.fs0:g}, {fs:g} Hz, e.g. "
                        f"{plan.adapter.path(cfg, rec.ids[i])}): set eeg.fs to resample them to one")
    out.n_nonfinite += n_bad
    out.health[i] = health[:3]
    if health[3]:
        out.reports[rec.ids[i]] = health[3]
    if was_dropped:
        out.dropped[i] = f"{plan.adapter.path(cfg, rec.ids[i])}: {health[3]}"


def _drop_rows(plan: Plan, out: Written, bad: dict[str, dict[int, str]], what: str, key: str, allowed: bool) -> None:
    """Leave out the rows (still kept) that use any file in `bad` (kind → position → message), counted under `key`;
    a DataError naming the first file when not `allowed`. Those files are not indexed."""
    if not any(bad.values()):
        return
    rows = plan.rows_using(bad) & out.keep_rows
    first = next(iter(m for b in bad.values() for m in b.values()))
    msg = f"{int(rows.sum())} rows reference {sum(map(len, bad.values()))} {what}, e.g. {first}"
    if not allowed:
        msg += "; pass --allow-missing to skip them"
    out.keep_rows &= ~_mask(rows, msg, key, plan.skipped, allowed)
    for kind, b in bad.items():
        out.keep_files[kind][list(b)] = False


def index(plan: Plan, lay: Layout, done: Written, tmp: Path, t_start: float, inputs: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Write samples.csv, recordings.csv, each extra's `<stem>s.csv`, then meta.json last; returns the meta."""
    keep, rec, starts = done.keep_rows, plan.files["eeg"], plan.files["eeg"].start
    assert plan.start is not None
    samples = plan.table.loc[keep].reset_index(drop=True)
    rp = rec.pos[keep]
    samples["eeg_row"] = (starts[rec.pos] + plan.start)[keep]
    samples["eeg_lo"] = starts[rp]
    samples["eeg_hi"] = starts[rp] + rec.n[rp]
    cached = {x.name for x in plan.extras}
    for x in plan.adapter.extra_inputs:  # a declared extra not cached for this config: no windows (-1)
        if x.id_column in samples.columns:
            samples[f"{x.stem}_row"] = done.rows[x.name][keep] if x.name in cached else -1
    recs = pd.DataFrame({"recording_id": rec.ids, "eeg_start": starts, "eeg_len": rec.n})
    for j, col in enumerate(HEALTH_COLUMNS):
        recs[col] = done.health[:, j].astype(np.int64) if col.startswith("n_") else done.health[:, j]
    recs = recs.loc[done.keep_files["eeg"]]
    atomic_write_csv(tmp / "recordings.csv", recs)
    extras: dict[str, Any] = {}
    for x in plan.extras:
        f = plan.files[x.name]
        idx = pd.DataFrame({x.id_column: f.ids, f"{x.stem}_start": f.start, f"{x.stem}_len": f.n, "time0": done.time0[x.name]})
        atomic_write_csv(tmp / f"{x.stem}s.csv", idx.loc[done.keep_files[x.name]])
        extras[x.name] = {"stem": x.stem, "id_column": x.id_column, "shape": list(lay.shapes[x.name]),
                          "window_rows": x.window_rows, "n_files": int(done.keep_files[x.name].sum())}
    atomic_write_csv(tmp / "samples.csv", samples)
    cfg = plan.cfg
    meta = {
        "format": CACHE_FORMAT, "dataset": cfg.dataset, "task": plan.adapter.task, "split": cfg.split,
        "classes": list(plan.adapter.classes), "fs": plan.fs, "channels": plan.channels, "dtype": np.dtype(cfg.eeg.dtype).name,
        "hash": cfg.hash(), "params": cfg.hash_params(), "config": to_dict(cfg),
        "n_samples": len(samples), "n_rows_in": plan.n_rows_in, "n_recordings": int(done.keep_files["eeg"].sum()),
        "eeg_shape": list(lay.shapes["eeg"]), "extras": extras,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_s": round(time.perf_counter() - t_start, 3), "workers": plan.n_workers, "skipped": plan.skipped,
        "inputs": inputs,
        "build": {"allow_missing": cfg.allow_missing, "skip_unreadable": cfg.skip_unreadable,  # how, not what: not in the hash
                  "pool": plan.pool},
        "channel_health": health_summary(done.health, done.reports, cfg.eeg.bad_channels, cfg.eeg.bad_channels_max),
    }
    atomic_write_json(tmp / "meta.json", meta)
    return meta


def prepare(cfg: DataConfig, force: bool = False, progress: bool = True, lock_timeout_s: Optional[float] = None) -> Path:
    """Build (or reuse) the cache `cfg.cache_dir()`; returns its path.

    One build per cache at a time (`hbac.cache.lock`: a second one waits, then reuses the
    result; `lock_timeout_s` makes it give up with a CacheError). Reused when its `meta.json`
    hash equals `cfg.hash()`, its input fingerprint (sample table + signal files' sizes and
    times) is unchanged and its files are whole (unless `force`); otherwise rebuilt, saying why.
    SIGTERM unwinds like Ctrl-C (temp folder removed, workers ended). Raises `DataError` naming
    the file on missing files (unless `cfg.allow_missing`), windows past the end of a
    recording, unreadable files.
    """
    out = cfg.cache_dir()
    with sigterm_as_interrupt(), cache_lock(out, lock_timeout_s):
        _clean_stale(out)  # under the lock: no other build's temp folder is live
        adapter = adapter_for(cfg)
        table = adapter.table(cfg).reset_index(drop=True)
        inputs = input_fingerprint(cfg, adapter, table)
        why = _rebuild_reason(cfg, out, inputs, force)
        if why is None:
            log.info("reusing cache %s (hash %s, inputs %s)", out, cfg.hash(), inputs["fingerprint"])
            return out
        log.log(logging.WARNING if why.startswith("input data changed") or "incomplete" in why else logging.INFO, "%s", why)
        _build(cfg, table, inputs, progress)
        problem = verify_cache(out)
        if problem:
            raise CacheError(f"cache {out} failed its check after the build: {problem}; run `{PREPARE_HINT}` again with --force")
    return out


def _build(cfg: DataConfig, table: pd.DataFrame, inputs: dict[str, Any], progress: bool) -> None:
    """plan → allocate → write → check → finish → index into a temp folder renamed over `cfg.cache_dir()` (the caller holds the lock)."""
    out = cfg.cache_dir()
    t_start = time.perf_counter()
    plan = plan_rows(cfg, table)
    with atomic_dir(out) as tmp, _workers(plan, tmp) as (pool, rows):
        _chmod_like_umask(tmp)  # mkdtemp makes it 0700; the cache is an ordinary folder
        lay = allocate(plan, tmp)
        done = write(plan, lay, pool, progress)
        check_windows(plan, done)
        finish(lay, tmp, rows)
        meta = index(plan, lay, done, tmp, t_start, inputs)
    shape = meta["eeg_shape"]
    gb = shape[0] * shape[1] * np.dtype(cfg.eeg.dtype).itemsize / 1e9
    more = "".join(f", {x['n_files']} {k} files" for k, x in meta["extras"].items())
    log.info(
        "cache %s: %d samples, %d recordings (%.2f GB)%s in %.1f s (%.1f recordings/s, %d workers: %s)%s",
        out, meta["n_samples"], meta["n_recordings"], gb, more, meta["build_s"], meta["n_recordings"] / max(meta["build_s"], 1e-9),
        meta["workers"], plan.pool, f"; skipped {plan.skipped}" if plan.skipped else "",
    )
