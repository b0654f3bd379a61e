"""Build an on-disk cache from raw files (format: docs/internals.md, "Cache").

`prepare(cfg)` is generic over the adapter protocol (`hbac.datasets.DatasetAdapter`, looked
up in the registry by `cfg.dataset`): `table`, `channels`, `path`, `read`, `n_times` (to size a
recording from its footer/header without reading the signal) and `missing_reason`.

Pipeline: sample table → missing-file check → sizes (in parallel, from footers) → window
bounds check → `eeg.npy` / `spec.npy` allocated on disk → every recording read, preprocessed
and written into its own slice by a pool of worker processes (one recording in memory per
worker; the parent only sees small per-file results) → index CSVs → `meta.json` last.
Everything is built in a temp folder renamed into place at the end (`hbac.io.atomic_dir`).
"""
from __future__ import annotations

import contextlib
import glob
import logging
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hbac.cache.format import CACHE_FORMAT, PREPARE_HINT
from hbac.config import DataConfig, to_dict
from hbac.datasets import DatasetAdapter, adapter_for
from hbac.datasets.hms import eeg_n_rows, read_spectrogram, spec_path
from hbac.datasets.kaggle_spec import SPEC_STEP_S, SPEC_WINDOW_S
from hbac.cache.health import HEALTH_COLUMNS, channel_health, describe, example_text, over_limit
from hbac.cache.health import summary as health_summary
from hbac.cache.integrity import input_changes, input_fingerprint, verify_cache
from hbac.cache.lock import cache_lock
from hbac.errors import CacheError, DataError
from hbac.io import atomic_dir, atomic_write_csv, atomic_write_json, read_json
from hbac.procs import PARENT_ENV, die_with_parent, sigterm_as_interrupt, watch_process
from hbac.signals.filters import (
    preprocess,
)

log = logging.getLogger(__name__)


SPEC_WIDTH = 400  # Kaggle spectrogram columns (4 regions × 100 frequencies)


_EXAMPLES = 3  # missing files named in an error message
IN_PROCESS_FILES = 64  # with `workers: 0` (auto), fewer files than this are prepared without a process pool


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


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread inside the block: the small per-recording matmuls run ~40x slower
    with a multi-threaded BLAS competing with the other workers for the cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (a scikit-learn dependency): only a speed-up
        yield
        return
    with threadpool_limits(1):
        yield


def _init_worker(cfg: DataConfig, tmp: str, limit_threads: bool, parent_pid: Optional[int] = None) -> None:
    """Pool initializer: die with the parent (kill -9 included); remember the config and the output folder; one BLAS thread."""
    if parent_pid is not None:
        die_with_parent()  # Linux: the kernel kills this worker when its parent (prepare, or the forkserver) dies
        watch_process(parent_pid)  # and a thread that notices within a second that `prepare` is gone
    _W.clear()
    adapter = adapter_for(cfg)
    _W.update(cfg=cfg, tmp=Path(tmp), adapter=adapter, channels=list(adapter.channels(cfg)), fds={})
    if limit_threads:
        ctx = _one_blas_thread()
        ctx.__enter__()  # for the life of the worker process
        _W["blas"] = ctx


def _close_worker() -> None:
    for fd in _W.get("fds", {}).values():
        os.close(fd)
    _W.clear()


def _fd(name: str) -> int:
    fds = _W["fds"]
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


def _size_task(task: tuple) -> tuple:
    """('eeg', i, rid) → ('eeg', i, n_times, fs, reason) | ('spec', i, sid) → ('spec', i, n_steps)."""
    return _unreadable(task, _size_one)


def _size_one(task: tuple) -> tuple:
    kind, i, key = task
    cfg, adapter = _W["cfg"], _W["adapter"]
    if kind == "eeg":
        path = Path(adapter.path(cfg, key))
        with _naming(path, f"sizing recording {key!r}"):
            reason = adapter.missing_reason(cfg, key)
            if reason is not None:  # unusable (e.g. a montage channel absent): treated like a missing file
                return ("eeg", i, 0, 0.0, str(reason))
            n, fs = adapter.n_times(cfg, key)  # the default reads the recording once
        return ("eeg", i, int(n), float(fs), None)

    return ("spec", i, eeg_n_rows(spec_path(cfg.data_dir, key, cfg.split)))


def _work_task(task: tuple) -> tuple:
    """Read, preprocess and write one recording or one Kaggle spectrogram into its slice."""
    return _unreadable(task, _work_one)


def _work_one(task: tuple) -> tuple:
    cfg, adapter = _W["cfg"], _W["adapter"]
    if task[0] == "eeg":
        _, i, rid, fs_in, n_out, row0, header, n_chans, dtype = task
        path = Path(adapter.path(cfg, rid))
        with _naming(path, f"preparing recording {rid!r}"):
            x, fs = adapter.read(cfg, rid)
            if abs(float(fs) - fs_in) > 1e-6:
                raise DataError(f"{path}: sampling rate {fs} Hz, but its header said {fs_in} Hz")
            if x.shape[0] != n_chans:
                raise DataError(f"{path}: {x.shape[0]} channels after the montage, expected {n_chans}")
            e = cfg.eeg
            nan_ch, flat_ch, nan_frac = channel_health(x)
            report = describe(nan_ch, flat_ch, _W["channels"]) if over_limit(nan_ch, flat_ch, e.bad_channels_max) else None
            health = (len(nan_ch), len(flat_ch), nan_frac, report)
            if report and e.bad_channels == "error":
                raise DataError(f"{path}: {report}; eeg.bad_channels is 'error' (set it to 'zero' or 'drop' to go on)")
            if report and e.bad_channels == "drop":
                return ("eeg", i, 0, health, True)  # not written: its rows are left out
            y = preprocess(x, float(fs), nan=e.nan, band=e.bandpass, notch_hz=e.notch_hz, clip_uv=e.clip_uv, standardize=e.standardize, fs_out=e.fs)
            del x
            if y.shape[1] != n_out:
                raise DataError(f"{path}: {y.shape[1]} samples after preprocessing, its header promised {n_out}")
            out = np.ascontiguousarray(y.T, dtype=dtype)  # time-major (n_times, n_chans)
            del y
            n_bad = int(out.size - np.count_nonzero(np.isfinite(out)))
            _pwrite(_fd("eeg.npy"), out, header + row0 * out.strides[0])
        return ("eeg", i, n_bad, health, False)
    _, i, sid, n_steps, row0, header, offsets = task

    path = spec_path(cfg.data_dir, sid, cfg.split)
    with _naming(path, f"preparing spectrogram {sid!r}"):
        times, vals = read_spectrogram(path)
        if vals.shape != (n_steps, SPEC_WIDTH):
            raise DataError(f"{path}: values of shape {vals.shape}, its footer promised ({n_steps}, {SPEC_WIDTH})")
        if len(times) > 1 and np.any(np.diff(times) <= 0):
            raise DataError(f"{path}: 'time' column is not increasing")
        _pwrite(_fd("spec.npy"), vals, header + row0 * SPEC_WIDTH * 4)
        rel = np.searchsorted(times, offsets, side="left")  # as signals.kaggle_spec_window does
        time0 = float(times[0]) if len(times) else float("nan")
    return ("spec", i, rel.astype(np.int64), time0)


def _call_batch(fn: Any, tasks: list[tuple]) -> list[tuple]:
    """Run a batch of tasks in one worker call (amortises inter-process overhead on tiny tasks)."""
    return [fn(t) for t in tasks]


def _describe(tasks: list[tuple]) -> str:
    keys = [f"{t[0]} {t[2]}" for t in tasks[:5]]
    return ", ".join(keys) + (f" (+{len(tasks) - 5} more)" if len(tasks) > 5 else "")


def _run(tasks: list[tuple], fn: Any, pool: Optional[ProcessPoolExecutor], n_procs: int, desc: str, progress: bool) -> Iterator[tuple]:
    """Map `fn` over tasks (in the pool, or in-process when pool is None) with a progress bar; yields results."""
    with tqdm(total=len(tasks), desc=desc, unit="file", disable=not progress or not tasks, smoothing=0.05) as bar:
        if pool is None:
            for t in tasks:
                yield fn(t)
                bar.update()
            return
        chunk = max(1, min(16, len(tasks) // (8 * n_procs)))
        batches = {pool.submit(_call_batch, fn, tasks[k : k + chunk]): tasks[k : k + chunk] for k in range(0, len(tasks), chunk)}
        for fut in as_completed(batches):
            try:
                results = fut.result()
            except BrokenProcessPool as e:  # a worker was killed (e.g. by the OOM killer) or crashed
                raise RuntimeError(f"a prepare worker process died while working on {_describe(batches[fut])}: {e}") from e
            for r in results:
                yield r
            bar.update(len(results))


def _pool_context() -> mp.context.BaseContext:
    """forkserver (preloading this module) where available, else spawn."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        os.environ[PARENT_ENV] = str(os.getpid())  # the server checks it is still this process's child
        ctx.set_forkserver_preload(["hbac._forkserver_guard", __name__])  # guard first: dies with us
        return ctx
    return mp.get_context("spawn")


@contextlib.contextmanager
def _workers(cfg: DataConfig, tmp: Path, n: int) -> Iterator[Optional[ProcessPoolExecutor]]:
    """A process pool (forkserver where available) set up with `_init_worker`; None = in-process."""
    if n <= 1:
        _init_worker(cfg, str(tmp), limit_threads=False)
        try:
            with _one_blas_thread():
                yield None
        finally:
            _close_worker()
        return
    # forkserver, not fork: a forked child of a process whose polars/BLAS thread pools are running can
    # deadlock (polars warns about fork). The server preloads this module (numpy, scipy, polars; no
    # torch), so each worker starts in milliseconds with nothing but what prepare needs.
    ctx = _pool_context()
    pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(cfg, str(tmp), True, os.getpid()))
    try:
        yield pool
    except BaseException:  # an error, Ctrl-C or SIGTERM: end the workers now rather than after their current file
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True, cancel_futures=True)


def _missing(cfg: DataConfig, adapter: DatasetAdapter, table: pd.DataFrame, use_spec: bool) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Rows whose recording file / spectrogram file is absent: (rec_missing (n,), spec_missing (n,), example paths)."""
    rec_ids = pd.unique(table["recording_id"])
    rec_paths = [Path(adapter.path(cfg, r)) for r in rec_ids]
    rec_ok = _existing(rec_paths)
    rec_missing = ~rec_ok[pd.Index(rec_ids).get_indexer(table["recording_id"])]
    examples = [p for p, ok in zip(rec_paths, rec_ok) if not ok][:_EXAMPLES]
    spec_missing = np.zeros(len(table), dtype=bool)
    if use_spec:

        sids = pd.unique(table["spectrogram_id"])
        spaths = [spec_path(cfg.data_dir, s, cfg.split) for s in sids]
        sok = _existing(spaths)
        spec_missing = ~sok[pd.Index(sids).get_indexer(table["spectrogram_id"])]
        examples += [p for p, ok in zip(spaths, sok) if not ok][: max(0, _EXAMPLES - len(examples)) or 1]
    return rec_missing, spec_missing, examples


def _starts(lens: np.ndarray) -> np.ndarray:
    """Start row of each block given block lengths (n,) → (n,) int64."""
    return np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if len(lens) else np.zeros(0, np.int64)


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
        _build(cfg, adapter, table, inputs, progress)
        problem = verify_cache(out)
        if problem:
            raise CacheError(f"cache {out} failed its check after the build: {problem}; run `{PREPARE_HINT}` again with --force")
    return out


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


def _build(cfg: DataConfig, adapter: DatasetAdapter, table: pd.DataFrame, inputs: dict[str, Any], progress: bool) -> None:
    """Build cache `cfg.cache_dir()` from the sample table (the caller holds the cache lock)."""
    out = cfg.cache_dir()
    t_start = time.perf_counter()
    channels = list(adapter.channels(cfg))
    use_spec = bool(cfg.kaggle_spec and cfg.dataset == "hms" and "spectrogram_id" in table.columns)
    n_rows = len(table)
    skipped: dict[str, int] = {}

    # ---- missing files (one directory listing per folder)
    rec_missing, spec_missing, examples = _missing(cfg, adapter, table, use_spec)
    bad = rec_missing | spec_missing
    if bad.any():
        n_rec = len(pd.unique(table.loc[rec_missing, "recording_id"]))
        n_spec = len(pd.unique(table.loc[spec_missing, "spectrogram_id"])) if use_spec else 0
        what = f"{n_rec} recording file(s)" + (f", {n_spec} spectrogram file(s)" if use_spec else "")
        msg = f"{int(bad.sum())} of {n_rows} rows reference missing files ({what} absent), e.g. {', '.join(map(str, examples))}"
        if not cfg.allow_missing:
            raise DataError(f"{msg}; pass --allow-missing to skip them")
        skipped["missing_recording"] = int(rec_missing.sum())
        if use_spec:
            skipped["missing_spectrogram"] = int((spec_missing & ~rec_missing).sum())
        log.warning("%s; skipping them (allow_missing)", msg)
        table = table.loc[~bad]

    n_workers = cfg.workers or os.cpu_count() or 1
    n_files = table["recording_id"].nunique() + (table["spectrogram_id"].nunique() if use_spec else 0)
    # a pool costs a second or two to start: with workers on auto, a few files (a test set, a tiny
    # demo) are read in-process; an explicit `workers: N` is obeyed
    n_workers = 1 if (not cfg.workers and n_files < IN_PROCESS_FILES) else max(1, min(n_workers, n_files))
    dtype = np.dtype(cfg.eeg.dtype)
    native_fs = adapter.fs

    with atomic_dir(out) as tmp, _workers(cfg, tmp, n_workers) as pool:
        _chmod_like_umask(tmp)  # mkdtemp makes it 0700; the cache is an ordinary folder
        # ---- sizes from footers / headers (in parallel: thousands of files)
        rec_ids = pd.unique(table["recording_id"])
        spec_ids = pd.unique(table["spectrogram_id"]) if use_spec else np.zeros(0, np.int64)
        n_native = np.zeros(len(rec_ids), dtype=np.int64)
        fs_native = np.zeros(len(rec_ids), dtype=np.float64)
        spec_lens = np.zeros(len(spec_ids), dtype=np.int64)
        reasons: dict[int, str] = {}  # recording → why it cannot be used
        bad_rec: dict[int, str] = {}  # recording → read error (skip_unreadable)
        bad_spec: dict[int, str] = {}
        tasks = [("eeg", i, r) for i, r in enumerate(rec_ids)] + [("spec", i, s) for i, s in enumerate(spec_ids)]
        for r in _run(tasks, _size_task, pool, n_workers, f"sizing {cfg.name}", progress):
            if r[0] == "bad":
                (bad_rec if r[1] == "eeg" else bad_spec)[r[2]] = r[3]
            elif r[0] == "eeg":
                n_native[r[1]], fs_native[r[1]] = r[2], r[3]
                if r[4] is not None:
                    reasons[r[1]] = r[4]
            else:
                spec_lens[r[1]] = r[2]

        # ---- drop unusable / unreadable recordings, then windows outside their recording
        rec_pos = pd.Index(rec_ids).get_indexer(table["recording_id"])
        spec_pos = pd.Index(spec_ids).get_indexer(table["spectrogram_id"]) if use_spec else None
        if reasons:
            bad = np.isin(rec_pos, list(reasons))
            first = reasons[int(rec_pos[np.argmax(bad)])]
            msg = f"{int(bad.sum())} rows reference {len(reasons)} unusable recording(s), e.g. {first}"
            if not cfg.allow_missing:
                msg += "; pass --allow-missing to skip them"
            keep = ~_mask(bad, msg, "unusable_recording", skipped, cfg.allow_missing)
            table, rec_pos = table.loc[keep], rec_pos[keep]
            spec_pos = spec_pos[keep] if spec_pos is not None else None
        if bad_rec or bad_spec:
            bad = np.isin(rec_pos, list(bad_rec)) | (np.isin(spec_pos, list(bad_spec)) if spec_pos is not None else False)
            first = next(iter({**bad_rec, **bad_spec}.values()))
            keep = ~_mask(bad, f"{int(bad.sum())} rows reference {len(bad_rec) + len(bad_spec)} unreadable file(s), e.g. {first}", "unreadable", skipped, True)
            table, rec_pos = table.loc[keep], rec_pos[keep]
            spec_pos = spec_pos[keep] if spec_pos is not None else None

        used_fs = np.unique(fs_native[np.unique(rec_pos)]) if len(table) else np.zeros(0)
        if cfg.eeg.fs is None and len(used_fs) > 1:
            rates = ", ".join(f"{f:g}" for f in used_fs)
            raise DataError(f"recordings in {cfg.data_dir} have different sampling rates ({rates} Hz): set eeg.fs to resample them to one")
        fs = float(cfg.eeg.fs or (used_fs[0] if len(used_fs) else native_fs or 0.0))
        lens_all = np.array(  # fs 0: a recording already dropped above (never sized)
            [resampled_length(n, f, cfg.eeg.fs) if f > 0 else 0 for n, f in zip(n_native, fs_native)], dtype=np.int64
        )
        start = np.rint(table["start_s"].to_numpy(np.float64) * fs).astype(np.int64)
        n_win = np.rint(table["duration_s"].to_numpy(np.float64) * fs).astype(np.int64)
        past = (start < 0) | (start + n_win > lens_all[rec_pos]) | (n_win <= 0)
        if past.any():
            j = int(np.argmax(past))
            row = {c: table[c].iloc[j] for c in ("recording_id", "sample_id", "start_s", "duration_s")}  # keeps dtypes
            path = adapter.path(cfg, row["recording_id"])
            t0, end = float(row["start_s"]), float(row["start_s"]) + float(row["duration_s"])
            n_rec = int(lens_all[rec_pos[j]])
            msg = (
                f"{path}: window of sample_id {row['sample_id']} (row {table.index[j]} of the sample table) "
                f"spans {t0:.3f}–{end:.3f} s, outside the recording "
                f"(0–{n_rec / fs:.3f} s, {n_rec} samples at {fs:g} Hz); {int(past.sum())} such row(s)"
            )
            if not cfg.allow_missing:
                msg += "; pass --allow-missing to skip them"
            keep = ~_mask(past, msg, "window_past_end", skipped, cfg.allow_missing)
            table, rec_pos, start = table.loc[keep], rec_pos[keep], start[keep]
            spec_pos = spec_pos[keep] if spec_pos is not None else None
        if table.empty:
            log.warning("no rows left to cache from %s (%d rows in, skipped %s): the cache is empty", cfg.data_dir, n_rows, skipped)

        # ---- keep the recordings / spectrograms still referenced, in order of first use
        used = np.unique(rec_pos)
        remap = np.full(len(rec_ids), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        rec_ids, fs_native, lens = rec_ids[used], fs_native[used], lens_all[used]
        rec_pos = remap[rec_pos]
        starts = _starts(lens)
        eeg_row = starts[rec_pos] + start
        if spec_pos is not None:
            sused = np.unique(spec_pos)
            sremap = np.full(len(spec_ids), -1, dtype=np.int64)
            sremap[sused] = np.arange(len(sused))
            spec_ids, spec_lens, spec_pos = spec_ids[sused], spec_lens[sused], sremap[spec_pos]
        else:
            spec_ids, spec_lens = spec_ids[:0], spec_lens[:0]
        spec_starts = _starts(spec_lens)

        # ---- allocate the outputs on disk (sparse until written)
        eeg_shape = (int(lens.sum()), len(channels))
        mm = np.lib.format.open_memmap(tmp / "eeg.npy", mode="w+", dtype=dtype, shape=eeg_shape)
        eeg_header = int(mm.offset)
        del mm
        tasks = [
            ("eeg", i, r, float(fs_native[i]), int(lens[i]), int(starts[i]), eeg_header, len(channels), dtype.str)
            for i, r in enumerate(rec_ids)
        ]
        spec_shape: Optional[tuple[int, int]] = None
        spec_row = np.full(len(table), -1, dtype=np.int64)
        spec_groups: list[np.ndarray] = []
        if use_spec:
            spec_shape = (int(spec_lens.sum()), SPEC_WIDTH)
            mm = np.lib.format.open_memmap(tmp / "spec.npy", mode="w+", dtype=np.float32, shape=spec_shape)
            spec_header = int(mm.offset)
            del mm
            order = np.argsort(spec_pos, kind="stable")
            spec_groups = np.split(order, np.cumsum(np.bincount(spec_pos, minlength=len(spec_ids)))[:-1]) if len(spec_ids) else []
            offsets = table["spec_offset_s"].to_numpy(np.float64)
            tasks += [
                ("spec", i, s, int(spec_lens[i]), int(spec_starts[i]), spec_header, offsets[spec_groups[i]])
                for i, s in enumerate(spec_ids)
            ]
        time0 = np.full(len(spec_ids), np.nan)

        # ---- the heavy part: read → preprocess → write, in parallel
        n_nonfinite = 0
        failed_rec: dict[int, str] = {}
        dropped_rec: dict[int, str] = {}  # too many dead channels, eeg.bad_channels 'drop'
        health = np.zeros((len(rec_ids), len(HEALTH_COLUMNS)))
        reports: dict[Any, str] = {}
        failed_spec: dict[int, str] = {}
        for r in _run(tasks, _work_task, pool, n_workers, f"prepare {cfg.name}", progress):
            if r[0] == "bad":
                (failed_rec if r[1] == "eeg" else failed_spec)[r[2]] = r[3]
            elif r[0] == "eeg":
                n_nonfinite += r[2]
                health[r[1]] = r[3][:3]
                if r[3][3]:
                    reports[rec_ids[r[1]]] = r[3][3]
                if r[4]:
                    dropped_rec[r[1]] = f"{adapter.path(cfg, rec_ids[r[1]])}: {r[3][3]}"
            else:
                rows = spec_groups[r[1]]
                spec_row[rows] = spec_starts[r[1]] + r[2]
                time0[r[1]] = r[3]
        if n_nonfinite:
            log.warning("%d non-finite values in eeg.npy (dtype %s overflow? set eeg.clip_uv)", n_nonfinite, dtype)
        keep_rows = np.ones(len(table), dtype=bool)
        keep_recs = np.ones(len(rec_ids), dtype=bool)
        keep_specs = np.ones(len(spec_ids), dtype=bool)
        if failed_rec or failed_spec:  # only with skip_unreadable; their slices stay zero and unindexed
            bad = np.isin(rec_pos, list(failed_rec)) | (np.isin(spec_pos, list(failed_spec)) if spec_pos is not None else False)
            first = next(iter({**failed_rec, **failed_spec}.values()))
            keep_rows = ~_mask(bad, f"{int(bad.sum())} rows reference {len(failed_rec) + len(failed_spec)} unreadable file(s), e.g. {first}", "unreadable", skipped, True)
            keep_recs[list(failed_rec)] = False
            keep_specs[list(failed_spec)] = False
        if reports:
            log.warning(
                "%d recording(s) with more than %d dead (all-NaN or flat) channel(s), eeg.bad_channels %r: %s",
                len(reports), cfg.eeg.bad_channels_max, cfg.eeg.bad_channels, example_text(reports),
            )
        if dropped_rec:
            bad = np.isin(rec_pos, list(dropped_rec))
            msg = f"{int(bad.sum())} rows reference {len(dropped_rec)} recording(s) with dead channels, e.g. {next(iter(dropped_rec.values()))}"
            keep_rows &= ~_mask(bad, msg, "dead_channels", skipped, True)
            keep_recs[list(dropped_rec)] = False
        if use_spec:
            n_steps = int(round(SPEC_WINDOW_S / SPEC_STEP_S))
            spec_end = (spec_starts + spec_lens)[spec_pos] if len(spec_ids) else np.zeros(0, np.int64)
            n_short = int(np.sum((spec_row + n_steps > spec_end) & keep_rows))
            if n_short:
                log.info("%d spectrogram window(s) extend past their file's end: padded with NaN when read", n_short)

        # ---- index tables, then meta.json last
        samples = table.loc[keep_rows].reset_index(drop=True)
        rp = rec_pos[keep_rows]
        samples["eeg_row"] = eeg_row[keep_rows]
        samples["eeg_lo"] = starts[rp]
        samples["eeg_hi"] = starts[rp] + lens[rp]
        if "spectrogram_id" in samples.columns:
            samples["spec_row"] = spec_row[keep_rows]
        recs = pd.DataFrame({"recording_id": rec_ids, "eeg_start": starts, "eeg_len": lens})
        for j, col in enumerate(HEALTH_COLUMNS):
            recs[col] = health[:, j].astype(np.int64) if col.startswith("n_") else health[:, j]
        recs = recs.loc[keep_recs]
        atomic_write_csv(tmp / "recordings.csv", recs)
        if use_spec:
            specs = pd.DataFrame({"spectrogram_id": spec_ids, "spec_start": spec_starts, "spec_len": spec_lens, "time0": time0})
            atomic_write_csv(tmp / "specs.csv", specs.loc[keep_specs])
        atomic_write_csv(tmp / "samples.csv", samples)
        elapsed = time.perf_counter() - t_start
        meta = {
            "format": CACHE_FORMAT,
            "dataset": cfg.dataset,
            "split": cfg.split,
            "classes": list(adapter.classes),
            "fs": fs,
            "channels": channels,
            "dtype": dtype.name,
            "hash": cfg.hash(),
            "params": cfg.hash_params(),
            "config": to_dict(cfg),
            "n_samples": len(samples),
            "n_rows_in": n_rows,
            "n_recordings": int(keep_recs.sum()),
            "n_specs": int(keep_specs.sum()),
            "eeg_shape": list(eeg_shape),
            "spec_shape": list(spec_shape) if spec_shape else None,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_s": round(elapsed, 3),
            "workers": n_workers,
            "skipped": skipped,
            "channel_health": health_summary(health, reports, cfg.eeg.bad_channels, cfg.eeg.bad_channels_max),
            "inputs": inputs,
            "build": {"allow_missing": cfg.allow_missing, "skip_unreadable": cfg.skip_unreadable},  # how, not what: not in the hash
        }
        atomic_write_json(tmp / "meta.json", meta)

    gb = eeg_shape[0] * eeg_shape[1] * dtype.itemsize / 1e9
    log.info(
        "cache %s: %d samples, %d recordings (%.2f GB), %d spectrograms in %.1f s (%.1f recordings/s, %d workers)%s",
        out, len(samples), meta["n_recordings"], gb, meta["n_specs"], elapsed, meta["n_recordings"] / max(elapsed, 1e-9), n_workers,
        f"; skipped {skipped}" if skipped else "",
    )
