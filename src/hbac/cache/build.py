"""Build an on-disk cache from raw files (format: docs/internals.md, "Cache").

`prepare(cfg)` is generic over the adapter protocol (`hbac.datasets.<dataset>`):
`adapter_table`, `adapter_channels`, `adapter_path`, `adapter_read` and, optionally,
`adapter_n_times(cfg, rid) -> (n_times, fs)` (or `n_times` at the module's `FS`) to size a
recording from its footer/header without reading the signal.

Pipeline: sample table → missing-file check → sizes (in parallel, from footers) → window
bounds check → `eeg.npy` / `spec.npy` allocated on disk → every recording read, preprocessed
and written into its own slice by a pool of worker processes (one recording in memory per
worker; the parent only sees small per-file results) → index CSVs → `meta.json` last.
Everything is built in a temp folder renamed into place at the end (`hbac.io.atomic_dir`).
"""
from __future__ import annotations

import contextlib
import glob
import importlib
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
from types import ModuleType
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hbac.cache.format import CACHE_FORMAT
from hbac.config import DataConfig, to_dict
from hbac.datasets.chbmit import CHBMIT_CLASSES
from hbac.datasets.hms import HMS_CLASSES, eeg_n_rows, read_spectrogram, spec_path
from hbac.datasets.kaggle_spec import SPEC_STEP_S, SPEC_WINDOW_S
from hbac.errors import DataError
from hbac.io import atomic_dir, atomic_write_csv, atomic_write_json, read_json
from hbac.signals.filters import (
    preprocess,  # imported before the workers fork, so they do not each import torch
)

log = logging.getLogger(__name__)


ADAPTERS = ("hms", "chbmit")


PROTOCOL = ("adapter_table", "adapter_channels", "adapter_path", "adapter_read")


SPEC_WIDTH = 400  # Kaggle spectrogram columns (4 regions × 100 frequencies)


_EXAMPLES = 3  # missing files named in an error message


def get_adapter(dataset: str) -> ModuleType:
    """The adapter module `hbac.datasets.<dataset>` (imported lazily), checked for the protocol."""
    if dataset not in ADAPTERS:
        raise ValueError(f"unknown dataset {dataset!r} (known: {', '.join(ADAPTERS)})")
    mod = importlib.import_module(f"hbac.datasets.{dataset}")
    missing = [f for f in PROTOCOL if not hasattr(mod, f)]
    if missing:
        raise AttributeError(f"adapter hbac.datasets.{dataset} lacks {missing} (adapter protocol: {', '.join(PROTOCOL)})")
    return mod


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


def _classes(adapter: ModuleType, dataset: str) -> list[str]:
    cls = getattr(adapter, "CLASSES", None)
    return list(cls) if cls else list({"hms": HMS_CLASSES, "chbmit": CHBMIT_CLASSES}[dataset])


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


def _init_worker(cfg: DataConfig, tmp: str, limit_threads: bool) -> None:
    """Pool initializer: remember the config and the output folder; one BLAS thread per process."""
    _W.clear()
    _W.update(cfg=cfg, tmp=Path(tmp), adapter=get_adapter(cfg.dataset), fds={})
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
        path = Path(adapter.adapter_path(cfg, key))
        with _naming(path, f"sizing recording {key!r}"):
            why = getattr(adapter, "adapter_missing_reason", None)
            reason = why(cfg, key) if why is not None else None
            if reason is not None:  # unusable (e.g. a montage channel absent): treated like a missing file
                return ("eeg", i, 0, 0.0, str(reason))
            n_times = getattr(adapter, "adapter_n_times", None)
            if n_times is not None:
                r = n_times(cfg, key)
                n, fs = r if isinstance(r, tuple) else (r, float(adapter.FS))
            else:  # no cheap header: read the recording once to learn its length
                x, fs = adapter.adapter_read(cfg, key)
                n = x.shape[1]
        return ("eeg", i, int(n), float(fs), None)

    return ("spec", i, eeg_n_rows(spec_path(cfg.data_dir, key, cfg.split)))


def _work_task(task: tuple) -> tuple:
    """Read, preprocess and write one recording or one Kaggle spectrogram into its slice."""
    return _unreadable(task, _work_one)


def _work_one(task: tuple) -> tuple:
    cfg, adapter = _W["cfg"], _W["adapter"]
    if task[0] == "eeg":
        _, i, rid, fs_in, n_out, row0, header, n_chans, dtype = task
        path = Path(adapter.adapter_path(cfg, rid))
        with _naming(path, f"preparing recording {rid!r}"):
            x, fs = adapter.adapter_read(cfg, rid)
            if abs(float(fs) - fs_in) > 1e-6:
                raise DataError(f"{path}: sampling rate {fs} Hz, but its header said {fs_in} Hz")
            if x.shape[0] != n_chans:
                raise DataError(f"{path}: {x.shape[0]} channels after the montage, expected {n_chans}")
            e = cfg.eeg
            per_rec = e.filter_on == "recording"  # `window`: the model filters each window (DataConfig.window_filter)
            y = preprocess(x, float(fs), nan=e.nan, band=e.bandpass if per_rec else None, notch_hz=e.notch_hz if per_rec else None,
                           clip_uv=e.clip_uv, standardize=e.standardize, fs_out=e.fs)
            del x
            if y.shape[1] != n_out:
                raise DataError(f"{path}: {y.shape[1]} samples after preprocessing, its header promised {n_out}")
            out = np.ascontiguousarray(y.T, dtype=dtype)  # time-major (n_times, n_chans)
            del y
            n_bad = int(out.size - np.count_nonzero(np.isfinite(out)))
            _pwrite(_fd("eeg.npy"), out, header + row0 * out.strides[0])
        return ("eeg", i, n_bad)
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


@contextlib.contextmanager
def _workers(cfg: DataConfig, tmp: Path, n: int) -> Iterator[Optional[ProcessPoolExecutor]]:
    """A process pool (fork where available) set up with `_init_worker`; None = in-process."""
    if n <= 1:
        _init_worker(cfg, str(tmp), limit_threads=False)
        try:
            with _one_blas_thread():
                yield None
        finally:
            _close_worker()
        return
    # fork: workers inherit the imported modules (torch via hbac.signals) instead of importing them again
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
    pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(cfg, str(tmp), True))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on error: queued work is dropped, running tasks end


def _missing(cfg: DataConfig, adapter: ModuleType, table: pd.DataFrame, use_spec: bool) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Rows whose recording file / spectrogram file is absent: (rec_missing (n,), spec_missing (n,), example paths)."""
    rec_ids = pd.unique(table["recording_id"])
    rec_paths = [Path(adapter.adapter_path(cfg, r)) for r in rec_ids]
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


def prepare(cfg: DataConfig, force: bool = False, progress: bool = True) -> Path:
    """Build (or reuse) the cache `cfg.cache_dir()`; returns its path.

    Reused when its `meta.json` hash equals `cfg.hash()` (unless `force`); rebuilt, with the
    changed parameters logged, when it differs. Raises `DataError` naming the file on missing
    files (unless `cfg.allow_missing`), windows past the end of a recording, unreadable files.
    """
    out = cfg.cache_dir()
    _clean_stale(out)
    h = cfg.hash()
    meta_path = out / "meta.json"
    if meta_path.exists():
        try:
            old = read_json(meta_path)
        except (OSError, ValueError) as e:
            log.warning("%s is unreadable (%s): rebuilding", meta_path, e)
            old = {}
        if old.get("hash") == h and old.get("format") == CACHE_FORMAT and not force:
            log.info("reusing cache %s (hash %s)", out, h)
            return out
        if force:
            log.info("rebuilding cache %s (force)", out)
        else:
            log.info(
                "parameters changed for cache %s (hash %s → %s): rebuilding; %s",
                out, old.get("hash"), h, _param_changes(old.get("params", {}), cfg.hash_params()),
            )
    elif out.exists():
        log.warning("%s has no meta.json (an interrupted or failed build): rebuilding", out)

    t_start = time.perf_counter()
    adapter = get_adapter(cfg.dataset)
    table = adapter.adapter_table(cfg).reset_index(drop=True)
    channels = list(adapter.adapter_channels(cfg))
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
    n_workers = max(1, min(n_workers, table["recording_id"].nunique() + (table["spectrogram_id"].nunique() if use_spec else 0)))
    dtype = np.dtype(cfg.eeg.dtype)
    native_fs = getattr(adapter, "FS", None)

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
            path = adapter.adapter_path(cfg, row["recording_id"])
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
        failed_spec: dict[int, str] = {}
        for r in _run(tasks, _work_task, pool, n_workers, f"prepare {cfg.name}", progress):
            if r[0] == "bad":
                (failed_rec if r[1] == "eeg" else failed_spec)[r[2]] = r[3]
            elif r[0] == "eeg":
                n_nonfinite += r[2]
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
        recs = pd.DataFrame({"recording_id": rec_ids, "eeg_start": starts, "eeg_len": lens}).loc[keep_recs]
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
            "classes": _classes(adapter, cfg.dataset),
            "fs": fs,
            "channels": channels,
            "dtype": dtype.name,
            "hash": h,
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
        }
        atomic_write_json(tmp / "meta.json", meta)

    gb = eeg_shape[0] * eeg_shape[1] * dtype.itemsize / 1e9
    log.info(
        "cache %s: %d samples, %d recordings (%.2f GB), %d spectrograms in %.1f s (%.1f recordings/s, %d workers)%s",
        out, len(samples), meta["n_recordings"], gb, meta["n_specs"], elapsed, meta["n_recordings"] / max(elapsed, 1e-9), n_workers,
        f"; skipped {skipped}" if skipped else "",
    )
    return out
