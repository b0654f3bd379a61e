"""Read an on-disk cache (format: docs/internals.md, "Cache").

`Cache` memory-maps `eeg.npy` / `spec.npy` lazily and pickles without them, so a DataLoader
worker reopens the maps in its own process instead of receiving copies of the arrays.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from hbac.cache.format import CACHE_FORMAT, PREPARE_HINT, SPEC_STEPS
from hbac.config import DataConfig
from hbac.errors import CacheError
from hbac.io import read_json

log = logging.getLogger(__name__)


class Cache:
    """One prepared cache folder: index tables, memory-mapped signals, per-sample windows."""

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
        self.specs: Optional[pd.DataFrame] = self._csv("specs.csv") if (self.path / "specs.csv").exists() else None
        self.fs = float(self.meta["fs"])
        self.channels: list[str] = list(self.meta["channels"])
        self.classes: list[str] = list(self.meta["classes"])
        s = self.samples
        # per-sample integer bounds as plain arrays: window() runs in the DataLoader hot loop
        self._row = s["eeg_row"].to_numpy(np.int64)
        self._lo = s["eeg_lo"].to_numpy(np.int64)
        self._hi = s["eeg_hi"].to_numpy(np.int64)
        self._len = np.rint(s["duration_s"].to_numpy(np.float64) * self.fs).astype(np.int64)
        self._spec_row = s["spec_row"].to_numpy(np.int64) if "spec_row" in s else np.full(len(s), -1, np.int64)
        self._spec_hi = np.full(len(s), -1, dtype=np.int64)
        if self.specs is not None and "spectrogram_id" in s:
            pos = pd.Index(self.specs["spectrogram_id"]).get_indexer(s["spectrogram_id"])
            ends = (self.specs["spec_start"] + self.specs["spec_len"]).to_numpy(np.int64)
            ok = pos >= 0
            self._spec_hi[ok] = ends[pos[ok]]
        self._eeg: Optional[np.ndarray] = None
        self._spec: Optional[np.ndarray] = None

    def _csv(self, name: str) -> pd.DataFrame:
        p = self.path / name
        if not p.exists():
            raise CacheError(f"{p} is missing from the cache; re-run `{PREPARE_HINT}` with --force")
        return pd.read_csv(p)

    # ---- lazily opened memory maps (reopened in each process after unpickling)
    @property
    def eeg(self) -> np.ndarray:
        """(total_times, n_chans) float32/float16 memory map of every recording."""
        if self._eeg is None:
            self._eeg = self._load("eeg.npy", self.meta.get("eeg_shape"))
        return self._eeg

    @property
    def spec(self) -> Optional[np.ndarray]:
        """(total_steps, 400) float32 memory map of the Kaggle spectrograms, or None."""
        if self._spec is None and self.meta.get("spec_shape"):
            self._spec = self._load("spec.npy", self.meta["spec_shape"])
        return self._spec

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
        d["_eeg"] = d["_spec"] = None  # never pickle the arrays: the child maps the files itself
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

    @property
    def has_spec(self) -> bool:
        return bool(self.meta.get("spec_shape"))

    def window(self, i: int, shift: int = 0) -> np.ndarray:
        """EEG window of sample row i → (n_chans, n_times) float32; `shift` samples, clamped to its recording."""
        n, lo, hi = int(self._len[i]), int(self._lo[i]), int(self._hi[i])
        r = max(min(int(self._row[i]) + int(shift), hi - n), lo)
        return np.ascontiguousarray(self.eeg[r : r + n].T, dtype=np.float32)

    def spec_window(self, i: int) -> Optional[np.ndarray]:
        """Kaggle spectrogram window of sample row i → (300, 400) float32 raw values (NaN past the file end), or None."""
        r = int(self._spec_row[i])
        if r < 0 or self.spec is None:
            return None
        k = max(0, min(SPEC_STEPS, int(self._spec_hi[i]) - r))
        out = np.full((SPEC_STEPS, self.spec.shape[1]), np.nan, dtype=np.float32)
        out[:k] = self.spec[r : r + k]
        return out


def cache_status(cfg: DataConfig) -> str:
    """'ok', 'missing', 'incomplete' (no meta.json) or 'stale' (hash differs) for a config's cache."""
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
    return "ok" if m.get("hash") == cfg.hash() and m.get("format") == CACHE_FORMAT else "stale"
