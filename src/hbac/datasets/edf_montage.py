"""EDF seizure corpora: the montage picked by channel name, seizure-overlap window labels, and the adapter base.

`EDFMontageAdapter` is the base of every adapter whose recordings are EDF files read into a
bipolar montage (CHB-MIT, SzCORE BIDS, TUSZ): it owns `channels`, `read`, `n_times` (header only)
and `missing_reason`; a subclass gives `name`, `table` and `path` (and any checks of its own).
`recording_windows` cuts one recording into labelled windows of the common sample table.

Channels are picked by name into a fixed bipolar montage: exact names first, then reversed pairs
(negated), then differences of channels sharing a reference (`F7-CS2` − `T7-CS2`, or unipolar
`F7` − `T7`), with the old names T3/T4/T5/T6 accepted for T7/T8/P7/P8.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Sequence

import numpy as np
import pandas as pd

from hbac.datasets.base import DataConfig, DatasetAdapter
from hbac.datasets.edf import EDFRecording, read_edf
from hbac.errors import DataError
from hbac.fields import bounded
from hbac.signals.filters import resample
from hbac.signals.montage import montage_names, montage_pairs

SEIZURE_CLASSES = ["background", "seizure"]
DEFAULT_FS = 256.0  # `read_any_edf`'s default output rate (CHB-MIT's native rate)

# --------------------------------------------------------------------------- channel picking

_ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8", "01": "O1", "02": "O2"}
_DUMMY = {"", "-", "."}
_KNOWN_REFS = ("", "REF", "CS2", "LE", "AR", "AVG", "A1A2", "M1M2")


def _split_label(label: str) -> Optional[tuple[str, str]]:
    """EDF label → (electrode, reference) upper-cased with old names mapped; None for dummies."""
    s = label.strip().upper()
    if s.startswith("EEG "):
        s = s[4:].strip()
    if s in _DUMMY:
        return None
    parts = [p.strip() for p in s.split("-", 1)]
    a = _ALIASES.get(parts[0], parts[0])
    b = _ALIASES.get(parts[1], parts[1]) if len(parts) > 1 else ""
    return (a, b) if a else None


def resolve_montage(labels: Sequence[str], pairs: Sequence[tuple[str, str]]) -> tuple[list[int], np.ndarray, list[str]]:
    """Find each bipolar pair among EDF `labels` → (used indices, weights (n_pairs, n_used), missing names).

    Per pair `A-B`: the first channel named `A-B` (case-insensitive); else `B-A` negated;
    else `A-R` − `B-R` for a shared reference R (a bare `A` − `B` is R = '').
    """
    parsed = [_split_label(lab) for lab in labels]
    first: dict[tuple[str, str], int] = {}
    for i, p in enumerate(parsed):
        if p is not None and p not in first:
            first[p] = i
    by_ref: dict[str, dict[str, int]] = {}
    for (a, b), i in first.items():
        by_ref.setdefault(b, {}).setdefault(a, i)
    refs = [r for r in _KNOWN_REFS if r in by_ref] + [r for r in by_ref if r not in _KNOWN_REFS]
    terms: list[list[tuple[int, float]]] = []
    missing: list[str] = []
    for a0, b0 in pairs:
        a, b = (_ALIASES.get(x.upper(), x.upper()) for x in (a0, b0))
        if (a, b) in first:
            terms.append([(first[(a, b)], 1.0)])
        elif (b, a) in first:
            terms.append([(first[(b, a)], -1.0)])
        else:
            ref = next((r for r in refs if a in by_ref[r] and b in by_ref[r]), None)
            if ref is None:
                missing.append(f"{a0}-{b0}")
                terms.append([])
            else:
                terms.append([(by_ref[ref][a], 1.0), (by_ref[ref][b], -1.0)])
    used = sorted({i for t in terms for i, _ in t})
    col = {i: k for k, i in enumerate(used)}
    w = np.zeros((len(pairs), len(used)), dtype=np.float32)
    for r, t in enumerate(terms):
        for i, s in t:
            w[r, col[i]] = s
    return used, w, missing


def bipolar_pairs(montage: str) -> list[tuple[str, str]]:
    """The (anode, cathode) pairs of a bipolar montage; ValueError for a unipolar one."""
    pairs = montage_pairs(montage)
    if any(not b for _, b in pairs):
        raise ValueError(f"montage {montage!r} is unipolar; seizure EDF readers need a bipolar one ('chbmit_banana', 'tcp')")
    return pairs


def read_montage(rec: EDFRecording, montage: str = "chbmit_banana", fs_out: Optional[float] = None) -> tuple[np.ndarray, float]:
    """EDF recording → ((n_pairs, T) float32 µV, fs): the montage picked by channel name.

    Native rate when `fs_out` is None (the picked channels must share one rate); otherwise
    every picked channel is resampled to `fs_out`. Raises DataError naming the file and
    the missing channel(s).
    """

    pairs = bipolar_pairs(montage)
    used, w, missing = resolve_montage(rec.labels, pairs)
    if missing:
        raise DataError(f"{rec.path}: missing channel(s) {missing} for montage {montage!r}; channels in file: {rec.labels}")
    rates = rec.fs[used]
    if np.all(rates == rates[0]) and (fs_out is None or abs(rates[0] - fs_out) < 1e-9):
        raw = rec.read(used)
        fs = float(rates[0])
    elif fs_out is None:
        raise DataError(f"{rec.path}: montage channels have different rates {sorted(set(rates.tolist()))} Hz; pass fs_out")
    else:
        chans = [resample(rec.read([i]), float(rec.fs[i]), fs_out)[0] for i in used]
        t = min(len(c) for c in chans)
        raw = np.stack([c[:t] for c in chans])
        fs = float(fs_out)
    out = np.empty((len(pairs), raw.shape[1]), dtype=np.float32)
    for r in range(len(pairs)):
        nz = np.nonzero(w[r])[0]
        if len(nz) == 1 and w[r, nz[0]] == 1.0:
            out[r] = raw[nz[0]]  # plain pick: exact copy of the file's channel
        else:
            out[r] = (w[r, nz][:, None] * raw[nz]).sum(axis=0)
    return out, fs


def read_any_edf(path: str | Path, fs_out: Optional[float] = DEFAULT_FS, montage: str = "chbmit_banana") -> tuple[np.ndarray, float, list[str]]:
    """Any EEG EDF (bipolar CHB-MIT style, or unipolar / common-reference 10-20) → montage.

    Returns (x (n_pairs, T) float32 µV, fs, channel names); resampled to `fs_out` Hz
    (None keeps the native rate). T3/T4/T5/T6 are accepted for T7/T8/P7/P8.
    """

    rec = read_edf(path)
    x, fs = read_montage(rec, montage, fs_out)
    return x, fs, montage_names(montage)


# --------------------------------------------------------------------------- windows


def _windows(length_s: float, window_s: float, stride_s: float) -> np.ndarray:
    """Window starts (n,) in seconds covering [0, length_s] with whole windows only."""
    if length_s < window_s:
        return np.zeros(0)
    n = int(np.floor((length_s - window_s) / stride_s + 1e-9)) + 1
    return np.round(np.arange(n) * stride_s, 6)


def seizure_overlap(starts_s: np.ndarray, window_s: float, seizures: Sequence[tuple[float, float]]) -> np.ndarray:
    """Fraction (n,) of each window [start, start + window_s] inside any seizure interval."""
    starts = np.asarray(starts_s, dtype=np.float64)
    if len(seizures) == 0 or len(starts) == 0:
        return np.zeros(len(starts))
    sz = np.asarray(seizures, dtype=np.float64)
    lo = np.maximum(starts[:, None], sz[None, :, 0])
    hi = np.minimum(starts[:, None] + window_s, sz[None, :, 1])
    return np.clip(np.clip(hi - lo, 0, None).sum(axis=1) / window_s, 0.0, 1.0)


def recording_windows(recording_id: str, group: str, duration_s: float, seizures: Sequence[tuple[float, float]],
                      window_s: float, stride_s: float, label: str = "hard", hard_min_overlap: float = 0.5,
                      rec_start_s: float = 0.0) -> pd.DataFrame:
    """Sample-table rows of one recording: its whole windows labelled by their seizure overlap (seizure task)."""
    starts = _windows(duration_s, window_s, stride_s)
    ov = seizure_overlap(starts, window_s, seizures)
    sz = ov if label == "soft" else (ov >= hard_min_overlap).astype(np.float64)
    return pd.DataFrame({
        "sample_id": [f"{recording_id}_{s:08.1f}" for s in starts],
        "recording_id": recording_id,
        "group": group,
        "start_s": starts,
        "duration_s": float(window_s),
        "background_vote": 1.0 - sz,
        "seizure_vote": sz,
        "n_votes": np.ones(len(starts), dtype=np.int64),
        "seizure_overlap": ov,
        "rec_start_s": float(rec_start_s),
    })


# --------------------------------------------------------------------------- options


@dataclass
class WindowParams:
    """Sliding windows cut from each long recording, labelled by their seizure overlap."""

    window_s: float = bounded(10.0, gt=0)
    stride_s: float = bounded(5.0, gt=0)
    label: Literal["soft", "hard"] = "hard"  # soft = fraction of window in seizure
    hard_min_overlap: float = bounded(0.5, gt=0, le=1)  # hard label: seizure if overlap fraction >= this


@dataclass
class WindowedOptions:
    """Data-config keys of the EDF seizure datasets (`cfg.options`), at the top level of a data config."""

    windows: WindowParams = field(default_factory=WindowParams)
    patients: Optional[list[str]] = None  # restrict to these patients / subjects (e.g. chb01); null = all
    # the old generic HMS keys, at the values the shipped configs of these datasets had (NoOptions.legacy)
    legacy: ClassVar[dict[str, Any]] = {"kaggle_spec": False, "eeg_window_s": 50.0}


def sliding_windows(cfg: DataConfig) -> WindowParams:
    """The sliding-window settings of a data config (detection on whole recordings needs them); ValueError if none."""
    w = getattr(cfg.options, "windows", None)
    if not isinstance(w, WindowParams):
        raise ValueError(f"dataset {cfg.dataset!r} has no sliding windows (data `windows:`); whole-recording detection needs them")
    return w


# --------------------------------------------------------------------------- adapter base


class EDFMontageAdapter(DatasetAdapter):
    """Base of the EDF seizure adapters: one EDF per recording, read into `cfg.eeg.montage` by channel name.

    A subclass sets `name` (and `fs`), and implements `table` and `path`; `path` may raise
    FileNotFoundError for an unknown recording (reported by `missing_reason`).
    """

    task = "seizure"
    classes = SEIZURE_CLASSES
    options = WindowedOptions

    def sample_s(self, cfg: DataConfig) -> Optional[tuple[str, float]]:
        """Every sample is one `windows.window_s` window."""
        return "windows.window_s", float(cfg.options.windows.window_s)

    def channels(self, cfg: DataConfig) -> list[str]:
        """Channel names of the cached signal: the configured bipolar montage (`chbmit_banana`: 18 pairs, `tcp`: 22)."""
        bipolar_pairs(cfg.eeg.montage)
        return montage_names(cfg.eeg.montage)

    def read(self, cfg: DataConfig, recording_id: Any) -> tuple[np.ndarray, float]:
        """One file → ((n_pairs, T) float32 µV, native fs), channels picked by name, NOT yet filtered.

        The cache resamples when `cfg.eeg.fs` is set. Raises FileNotFoundError for a missing file,
        DataError naming the file and the channel when a montage channel is absent (see `missing_reason`).
        """
        path = self.path(cfg, recording_id)
        if not path.exists():
            raise FileNotFoundError(f"EDF file not found: {path}")
        return read_montage(read_edf(path), cfg.eeg.montage)

    def missing_reason(self, cfg: DataConfig, recording_id: Any) -> Optional[str]:
        """Why a recording cannot be used (missing file, unreadable header, missing channel), or None.

        Reads the EDF header only. `prepare` treats a non-None reason like a missing file.
        """
        try:
            path = self.path(cfg, recording_id)
        except FileNotFoundError as e:
            return str(e)
        if not path.exists():
            return f"missing file {path}"
        try:
            rec = read_edf(path)
        except DataError as e:
            return f"unreadable EDF: {e}"
        _, _, missing = resolve_montage(rec.labels, bipolar_pairs(cfg.eeg.montage))
        return f"missing channel(s) {', '.join(missing)} in {path}" if missing else None
