"""Read an on-disk cache (format: docs/internals.md, "Cache").

`Cache` memory-maps `eeg.npy` and each extra input's `<stem>.npy` lazily and pickles without them, so a DataLoader
worker reopens the maps in its own process instead of receiving copies of the arrays.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from hbac.cache.format import CACHE_FORMAT, PREPARE_HINT
from hbac.cache.integrity import input_changes, input_fingerprint, verify_cache
from hbac.config import DataConfig
from hbac.errors import CacheError
from hbac.io import read_json

log = logging.getLogger(__name__)


def eeg_slice(eeg: np.ndarray, row: int, lo: int, hi: int, n: int, shift: int = 0, perm: Optional[np.ndarray] = None) -> np.ndarray:
    """The one window slicer: `n` rows of time-major `eeg` from `row + shift`, clamped to [lo, hi) → (n_chans, n) float32.

    Zero-padded only where the array itself ends (prepare guarantees `hi - lo >= n`). `perm`: the output's
    channels in this order (a hemisphere flip), applied in the same copy as the transpose. Always a new,
    writeable array, never a view of `eeg` (a one-channel window's transpose is already contiguous: it is
    copied too, as torch cannot wrap a read-only memmap view without a warning).
    """
    r = max(min(int(row) + int(shift), int(hi) - n), int(lo))
    w = np.asarray(eeg[r : r + n], dtype=np.float32)
    if perm is not None and len(perm) != w.shape[1]:
        raise ValueError(f"eeg_slice: channel permutation of length {len(perm)} for {w.shape[1]} channels")
    if len(w) < n:
        w = np.concatenate([w, np.zeros((n - len(w), w.shape[1]), np.float32)])
    return w.T[perm] if perm is not None else np.array(w.T, order="C")


def extra_slice(arr: np.ndarray, row: int, hi: int, n_rows: int, copy: bool = True) -> np.ndarray:
    """`n_rows` rows of an extra input from `row`, never past `hi` (its file's end) → (n_rows, width) float32, NaN-padded.

    `copy=False`: a read-only view of `arr` when no padding is needed (the caller copies it once, e.g. into its layout).
    """
    if not copy and row >= 0 and int(hi) - int(row) >= n_rows and arr.dtype == np.float32:
        return arr[row : row + n_rows]
    out = np.full((n_rows, arr.shape[1]), np.nan, dtype=np.float32)
    if row >= 0:
        k = max(0, min(n_rows, int(hi) - int(row)))
        out[:k] = arr[row : row + k]
    return out


class Cache:
    """One prepared cache folder: index tables, memory-mapped signals, per-sample windows.

    `extras` maps each cached extra input (e.g. `kaggle_spec`) to its layout from meta.json:
    `stem` (files `<stem>.npy`, `<stem>s.csv`, samples column `<stem>_row`), `id_column`,
    `shape`, `window_rows`, `n_files`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise CacheError(f"no cache at {self.path}; build it with `{PREPARE_HINT}`")
        meta_path = self.path / "meta.json"
        if not meta_path.exists():
            raise CacheError(
                f"{self.path} is an incomplete cache (no meta.json: its build was interrupted or failed); "
                f"re-run `{PREPARE_HINT}` to rebuild it"
            )
        self.meta: dict[str, Any] = read_json(meta_path)
        self.samples: pd.DataFrame = self._csv("samples.csv")
        self.recordings: pd.DataFrame = self._csv("recordings.csv")
        self.extras: dict[str, dict[str, Any]] = dict(self.meta.get("extras") or {})
        self.extra_index: dict[str, pd.DataFrame] = {k: self._csv(f"{x['stem']}s.csv") for k, x in self.extras.items()}
        self.fs = float(self.meta["fs"])
        self.channels: list[str] = list(self.meta["channels"])
        self.classes: list[str] = list(self.meta["classes"])
        s = self.samples
        # per-sample integer bounds as plain arrays: window() runs in the DataLoader hot loop
        self._row = s["eeg_row"].to_numpy(np.int64)
        self._lo = s["eeg_lo"].to_numpy(np.int64)
        self._hi = s["eeg_hi"].to_numpy(np.int64)
        self._len = np.rint(s["duration_s"].to_numpy(np.float64) * self.fs).astype(np.int64)
        self._x_bounds = {k: self.extra_bounds(k, s) for k in self.extras}
        self._maps: dict[str, np.ndarray] = {}

    def _csv(self, name: str) -> pd.DataFrame:
        p = self.path / name
        if not p.exists():
            raise CacheError(f"{p} is missing from the cache; re-run `{PREPARE_HINT}` with --force")
        return pd.read_csv(p)

    def extra_bounds(self, name: str, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(row, hi) per row of `table` for extra input `name`: window start (-1: none) and its file's end row."""
        x, idx = self.extras[name], self.extra_index[name]
        stem, col = x["stem"], x["id_column"]
        row = table[f"{stem}_row"].to_numpy(np.int64) if f"{stem}_row" in table else np.full(len(table), -1, np.int64)
        hi = np.full(len(table), -1, dtype=np.int64)
        if col in table:
            pos = pd.Index(idx[col]).get_indexer(table[col])
            ends = (idx[f"{stem}_start"] + idx[f"{stem}_len"]).to_numpy(np.int64)
            ok = pos >= 0
            hi[ok] = ends[pos[ok]]
        return row, hi

    # ---- lazily opened memory maps (reopened in each process after unpickling)
    @property
    def eeg(self) -> np.ndarray:
        """(total_times, n_chans) float32/float16 memory map of every recording."""
        if "eeg" not in self._maps:
            self._maps["eeg"] = self._load("eeg.npy", self.meta.get("eeg_shape"))
        return self._maps["eeg"]

    def extra(self, name: str) -> np.ndarray:
        """(total_rows, width) float32 memory map of extra input `name` (every file's rows stacked)."""
        if name not in self.extras:
            raise KeyError(f"cache {self.path} holds no extra input {name!r} (it holds: {sorted(self.extras) or 'none'})")
        if name not in self._maps:
            x = self.extras[name]
            self._maps[name] = self._load(f"{x['stem']}.npy", x["shape"])
        return self._maps[name]

    def _load(self, name: str, shape: Optional[list[int]]) -> np.ndarray:
        p = self.path / name
        if not p.exists():
            raise CacheError(f"{p} is missing from the cache; re-run `{PREPARE_HINT}` with --force")
        arr = np.load(p, mmap_mode="r")
        if shape is not None and list(arr.shape) != list(shape):
            raise CacheError(f"{p} has shape {arr.shape}, meta.json says {tuple(shape)}; re-run `{PREPARE_HINT}` with --force")
        return arr

    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["_maps"] = {}  # never pickle the arrays: the child maps the files itself
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)

    # ---- windows
    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r}, {len(self)} samples, {len(self.channels)} channels at {self.fs:g} Hz)"

    @property
    def window_filter(self) -> Optional[dict[str, Any]]:
        """{bandpass, notch_hz} the model must apply to each window (cache built with eeg.filter_on: window), or None."""
        eeg = (self.meta.get("config") or {}).get("eeg") or {}
        if eeg.get("filter_on", "recording") != "window" or not (eeg.get("bandpass") or eeg.get("notch_hz")):
            return None
        return {"bandpass": eeg.get("bandpass"), "notch_hz": eeg.get("notch_hz")}

    def window(self, i: int, shift: int = 0) -> np.ndarray:
        """EEG window of sample row i → (n_chans, n_times) float32; `shift` samples, clamped to its recording."""
        return eeg_slice(self.eeg, self._row[i], self._lo[i], self._hi[i], int(self._len[i]), shift)

    def extra_window(self, name: str, i: int) -> Optional[np.ndarray]:
        """Window of extra input `name` for sample row i → (window_rows, width) float32 raw values
        (NaN past its file's end), or None when the row has none."""
        row, hi = self._x_bounds[name]
        if row[i] < 0:
            return None
        return extra_slice(self.extra(name), int(row[i]), int(hi[i]), int(self.extras[name]["window_rows"]))


def cache_status(cfg: DataConfig) -> str:
    """'ok', 'missing', 'incomplete' (no meta.json, or arrays missing/short), 'stale' (hash differs)
    or 'changed' (its input data changed since the build) for a config's cache.

    Where the raw data cannot be read (a cache shipped without it), the inputs are not checked.
    """
    path = cfg.cache_dir()
    if not path.is_dir():
        return "missing"
    meta = path / "meta.json"
    if not meta.exists():
        return "incomplete"
    try:
        m = read_json(meta)
    except (OSError, ValueError):
        return "incomplete"
    if m.get("hash") != cfg.hash() or m.get("format") != CACHE_FORMAT:
        return "stale"
    problem = verify_cache(path, m)
    if problem:
        log.warning("cache %s is incomplete: %s", path, problem)
        return "incomplete"
    try:
        inputs = input_fingerprint(cfg)
    except (OSError, ValueError, KeyError) as e:  # no raw data here (DataError is a ValueError): trust the cache as built
        log.info("raw data for cache %s not readable (%s): using the cache as built, inputs unchecked", path, e)
        return "ok"
    if (m.get("inputs") or {}).get("fingerprint") != inputs["fingerprint"]:
        log.warning("cache %s: %s", path, input_changes(m.get("inputs") or {}, inputs))
        return "changed"
    return "ok"
