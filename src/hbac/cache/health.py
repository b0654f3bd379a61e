"""Dead channels: count all-NaN and flat channels per recording, so a bad electrode is reported, not silently zeroed.

The policy for a recording with more than `eeg.bad_channels_max` dead channels is
`eeg.bad_channels`: 'zero' keeps it (the dead channels are cached as zeros), 'drop' leaves its
rows out of the cache (counted in `meta.json` `skipped.dead_channels`), 'error' stops the build
naming the file and channels. Either way the counts go to `recordings.csv` and `meta.json`.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

HEALTH_COLUMNS = ("n_nan_chans", "n_flat_chans", "nan_frac")  # recordings.csv columns
EXAMPLES = 5  # recordings named in meta.json and in the warning


def channel_health(x: np.ndarray) -> tuple[list[int], list[int], float]:
    """x (n_chans, n_times) → (all-NaN channel indices, flat (constant, not all-NaN) channel indices, fraction of NaN samples)."""
    if x.size == 0:
        return [], [], 0.0
    a = np.ascontiguousarray(x)  # a (C, T) view of a time-major block: numpy reduces a row 10x faster than a column
    n_nan = np.isnan(a).sum(axis=1)
    all_nan = n_nan == a.shape[1]
    hi, lo = a.max(axis=1), a.min(axis=1)  # vectorised; NaN-propagating, so ...
    some = np.flatnonzero(n_nan > 0)
    if len(some):  # ... channels with a NaN take the NaN-ignoring max / min
        hi[some], lo[some] = np.fmax.reduce(a[some], axis=1), np.fmin.reduce(a[some], axis=1)
    flat = ~all_nan & (hi == lo)
    return np.flatnonzero(all_nan).tolist(), np.flatnonzero(flat).tolist(), float(n_nan.sum() / a.size)


def describe(nan_chans: Sequence[int], flat_chans: Sequence[int], names: Sequence[str]) -> str:
    """'2 dead channel(s) of 18: all-NaN Fp1-F7, F7-T3; flat —'."""
    pick = lambda idx: ", ".join(names[i] if i < len(names) else str(i) for i in idx) or "—"  # noqa: E731
    return f"{len(nan_chans) + len(flat_chans)} dead channel(s) of {len(names)}: all-NaN {pick(nan_chans)}; flat {pick(flat_chans)}"


def summary(health: np.ndarray, reports: dict[Any, str], policy: str, max_dead: int) -> dict[str, Any]:
    """meta.json `channel_health`: health (n_recordings, 3) = HEALTH_COLUMNS per recording; reports {recording_id: description}."""
    health = np.asarray(health, dtype=np.float64).reshape(-1, len(HEALTH_COLUMNS))
    return {
        "policy": policy,
        "max_dead_channels": max_dead,
        "n_recordings_with_nan_channels": int((health[:, 0] > 0).sum()),
        "n_recordings_with_flat_channels": int((health[:, 1] > 0).sum()),
        "n_recordings_over_max": len(reports),
        "max_nan_frac": float(health[:, 2].max()) if len(health) else 0.0,
        "examples": {str(k): v for k, v in list(reports.items())[:EXAMPLES]},
    }


def over_limit(nan_chans: Sequence[int], flat_chans: Sequence[int], max_dead: int) -> bool:
    """Whether a recording has more dead channels than allowed."""
    return len(nan_chans) + len(flat_chans) > max_dead


def example_text(reports: dict[Any, str]) -> Optional[str]:
    """'rec 1: …; rec 2: …' for the first few reported recordings (None when none)."""
    if not reports:
        return None
    return "; ".join(f"{k}: {v}" for k, v in list(reports.items())[:EXAMPLES])
