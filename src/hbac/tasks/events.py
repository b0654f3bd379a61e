"""Seizure detection: window metrics, events from window probabilities, event scoring, the SzCORE events.tsv writer."""
from __future__ import annotations

import functools
import itertools
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from timescoring.annotations import Annotation
from timescoring.scoring import EventScoring, SampleScoring

from hbac.io import atomic_write_text

log = logging.getLogger(__name__)


Event = tuple[float, float, float]  # (start_s, end_s, peak_prob)


def _nan_div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney with average ranks for ties); NaN for one class."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average rank of each run of tied scores
    bounds = np.concatenate([[0], np.nonzero(np.diff(ss))[0] + 1, [len(ss)]])
    run_rank = (bounds[:-1] + bounds[1:] + 1) / 2.0  # 1-based mean rank of each run
    ranks[order] = np.repeat(run_rank, np.diff(bounds))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision Σ (R_k − R_{k−1}) P_k over distinct score thresholds; NaN without positives."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    last = np.concatenate([np.nonzero(np.diff(ss))[0], [len(ss) - 1]])  # last index of each tie run
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def window_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Window-level scores of seizure probabilities `prob` (N,) against 0/1 labels `y_true` (N,).

    Returns auroc, auprc (average precision), sensitivity, specificity, precision, f1 at
    `threshold` (prob >= threshold is positive), and the counts; undefined ratios are NaN.
    """
    y = np.asarray(y_true).astype(np.float64)
    p = np.asarray(prob, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true and prob must be 1-D of equal length, got {y.shape} and {p.shape}")
    if np.isnan(p).any():
        raise ValueError(f"prob has {int(np.isnan(p).sum())} NaN value(s)")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must be 0/1 (threshold soft labels first)")
    yt, yp = y == 1, p >= threshold
    tp, fp = int(np.sum(yt & yp)), int(np.sum(~yt & yp))
    fn, tn = int(np.sum(yt & ~yp)), int(np.sum(~yt & ~yp))
    sens, prec = _nan_div(tp, tp + fn), _nan_div(tp, tp + fp)
    return {
        "auroc": roc_auc(yt, p),
        "auprc": average_precision(yt, p),
        "sensitivity": sens,
        "specificity": _nan_div(tn, tn + fp),
        "precision": prec,
        "f1": _nan_div(2 * tp, 2 * tp + fp + fn),
        "threshold": float(threshold),
        "n": int(len(y)),
        "n_pos": int(yt.sum()),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def smooth(prob: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average over k consecutive windows (shorter at the edges)."""
    p = np.asarray(prob, dtype=np.float64)
    if k <= 1 or len(p) == 0:
        return p.copy()
    k = int(k)
    # full convolution, then the centred slice: mode="same" returns max(len(p), k) values
    start = (k - 1) // 2
    num = np.convolve(p, np.ones(k), mode="full")[start : start + len(p)]
    den = np.convolve(np.ones(len(p)), np.ones(k), mode="full")[start : start + len(p)]
    return num / den


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges [i, j) of consecutive True values."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def intervals_from_windows(starts_s: np.ndarray, window_s: float, mask: np.ndarray) -> list[tuple[float, float, int, int]]:
    """Runs of positive windows → (start_s, end_s, first index, end index) in start order.

    A run continues while the next positive window starts no later than the previous one
    ends (overlapping or adjacent windows); starts must be sorted.
    """
    starts = np.asarray(starts_s, dtype=np.float64)
    out = []
    for i, j in _runs(mask):
        k = i
        for m in range(i + 1, j):  # split where consecutive windows leave a gap in time
            if starts[m] > starts[m - 1] + window_s + 1e-9:
                out.append((float(starts[k]), float(starts[m - 1] + window_s), k, m))
                k = m
        out.append((float(starts[k]), float(starts[j - 1] + window_s), k, j))
    return out


def merge_events(events: Sequence[Event], gap_s: float) -> list[Event]:
    """Merge events separated by less than `gap_s` seconds (peak = max of the merged)."""
    out: list[list[float]] = []
    for s, e, p in sorted(events):
        if out and s - out[-1][1] < gap_s:
            out[-1][1] = max(out[-1][1], e)
            out[-1][2] = max(out[-1][2], p)
        else:
            out.append([s, e, p])
    return [(float(s), float(e), float(p)) for s, e, p in out]


def detect_events(
    prob: np.ndarray,
    starts_s: np.ndarray,
    window_s: float,
    threshold: float = 0.5,
    smooth_windows: int = 3,
    merge_gap_s: float = 90.0,
    max_event_s: float = 300.0,
    min_event_s: float = 0.0,
) -> list[Event]:
    """Window probabilities (N,) of one recording → events [(start_s, end_s, peak_prob)].

    Moving average over `smooth_windows` windows → smoothed >= threshold → runs of
    overlapping/adjacent windows → runs shorter than `min_event_s` dropped → events closer
    than `merge_gap_s` merged → events longer
    than `max_event_s` split into `max_event_s` pieces. peak_prob is the maximum smoothed
    probability of the windows overlapping the event.
    """
    p = np.asarray(prob, dtype=np.float64)
    starts = np.asarray(starts_s, dtype=np.float64)
    if p.shape != starts.shape:
        raise ValueError(f"prob {p.shape} and starts_s {starts.shape} differ in shape")
    if len(p) == 0:
        return []
    order = np.argsort(starts, kind="stable")
    p, starts = p[order], starts[order]
    ps = smooth(p, smooth_windows)
    runs = intervals_from_windows(starts, window_s, ps >= threshold)
    runs = [r for r in runs if r[1] - r[0] >= min_event_s - 1e-9]
    events = merge_events([(s, e, float(ps[i:j].max())) for s, e, i, j in runs], merge_gap_s)
    if not max_event_s or max_event_s <= 0:
        return events
    out: list[Event] = []
    for s, e, peak in events:
        if e - s <= max_event_s + 1e-9:
            out.append((s, e, peak))
            continue
        for a in np.arange(s, e, max_event_s):
            b = min(a + max_event_s, e)
            inside = (starts < b) & (starts + window_s > a)
            out.append((float(a), float(b), float(ps[inside].max()) if inside.any() else peak))
    return out


def events_to_frame(events: Sequence[Sequence[float]]) -> pd.DataFrame:
    """Events → DataFrame with columns start_s, end_s, peak_prob (NaN peak for 2-tuples)."""
    rows = [(float(e[0]), float(e[1]), float(e[2]) if len(e) > 2 else float("nan")) for e in events]
    return pd.DataFrame(rows, columns=["start_s", "end_s", "peak_prob"]).astype("float64")


# SzCORE (HED-SCORE) events.tsv: what `detect` writes and the BIDS adapter (`hbac.datasets.bids`) reads
EVENTS_COLUMNS = ["onset", "duration", "eventType", "confidence", "channels", "dateTime", "recordingDuration"]
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
NA = "n/a"


def events_frame(events: Sequence[Sequence[float]], duration_s: float, date_time: Optional[datetime] = None,
                 event_type: str = "sz", with_confidence: bool = True) -> pd.DataFrame:
    """Events [(start_s, end_s[, confidence])] → an SzCORE events table (one `bckg` row when there are none)."""
    stamp = (date_time or datetime(1970, 1, 1)).strftime(DATETIME_FORMAT)
    rows = []
    for e in sorted(events, key=lambda e: float(e[0])):
        conf = f"{float(e[2]):.2f}" if with_confidence and len(e) > 2 else NA
        rows.append([f"{float(e[0]):.2f}", f"{float(e[1]) - float(e[0]):.2f}", event_type, conf, NA, stamp,
                     f"{float(duration_s):.2f}"])
    if not rows:
        rows.append(["0.00", f"{float(duration_s):.2f}", "bckg", NA, NA, stamp, f"{float(duration_s):.2f}"])
    return pd.DataFrame(rows, columns=EVENTS_COLUMNS)


def write_events_tsv(path: str | Path, events: Sequence[Sequence[float]], duration_s: float,
                     date_time: Optional[datetime] = None, event_type: str = "sz") -> None:
    """Write events [(start_s, end_s[, confidence])] as an SzCORE `events.tsv` (atomic)."""
    df = events_frame(events, duration_s, date_time, event_type)
    atomic_write_text(path, df.to_csv(sep="\t", index=False, lineterminator="\n"))


# SzCORE scoring (the `timescoring` library) works on a 10 Hz timeline of each recording.
SZCORE_FS = 10
# timescoring's defaults: 30 s before / 60 s after a reference seizure, merge < 90 s, split > 300 s, any overlap
SZCORE_PARAMS = {"pre_s": 30.0, "post_s": 60.0, "merge_gap_s": 90.0, "max_event_s": 300.0, "min_overlap": 0.0}


def _annotation(events: Sequence[Sequence[float]], n_samples: int, fs: int) -> Annotation:
    """Events [(start_s, end_s, …)] → a timescoring Annotation on [0, n_samples / fs), sorted and clipped."""
    end = n_samples / fs
    ev = sorted((max(0.0, float(e[0])), min(end, float(e[1]))) for e in events)
    return Annotation([(a, b) for a, b in ev if b > a], fs, n_samples)


def _timeline(duration_s: float, events: Sequence[Sequence[float]], fs: int) -> int:
    """Samples at `fs` of a timeline covering the recording and every event (at least one)."""
    last = max([float(duration_s)] + [float(e[1]) for e in events])
    return max(1, int(round(last * fs)))


def event_counts(true_events: Sequence[Sequence[float]], pred_events: Sequence[Sequence[float]],
                 duration_s: float = 0.0, pre_s: float = 30.0, post_s: float = 60.0, merge_gap_s: float = 90.0,
                 max_event_s: float = 300.0, min_overlap: float = 0.0) -> dict[str, int]:
    """SzCORE event scoring of one recording by `timescoring` → counts n_true, n_detected, n_pred, n_fp.

    Reference and hypothesis events are both merged (gap < merge_gap_s) and split (> max_event_s);
    a reference seizure extended by pre_s/post_s is detected when a hypothesis covers more than
    `min_overlap` of it (any 0.1 s sample for 0); a hypothesis event is a false alarm when it touches
    no detected (extended) seizure. The timeline is [0, duration_s] (extended to the last event).
    """
    n = _timeline(duration_s, list(true_events) + list(pred_events), SZCORE_FS)
    ref, hyp = _annotation(true_events, n, SZCORE_FS), _annotation(pred_events, n, SZCORE_FS)
    param = EventScoring.Parameters(toleranceStart=pre_s, toleranceEnd=post_s, minOverlap=min_overlap,
                                    maxEventDuration=max_event_s, minDurationBetweenEvents=merge_gap_s)
    sc = EventScoring(ref, hyp, param)
    return {"n_true": int(sc.refTrue), "n_detected": int(sc.tp), "n_pred": len(sc.hyp.events), "n_fp": int(sc.fp)}


def sample_counts(true_events: Sequence[Sequence[float]], pred_events: Sequence[Sequence[float]],
                  duration_s: float = 0.0, fs: int = 1) -> dict[str, int]:
    """SzCORE sample (epoch) scoring by `timescoring` at `fs` Hz → counts n_true, n_detected, n_pred, n_fp (samples)."""
    n = _timeline(duration_s, list(true_events) + list(pred_events), fs)
    sc = SampleScoring(_annotation(true_events, n, fs), _annotation(pred_events, n, fs), fs)
    return {"n_true": int(sc.refTrue), "n_detected": int(sc.tp), "n_pred": int(sc.tp + sc.fp), "n_fp": int(sc.fp)}


def event_metrics(counts: dict[str, Any], duration_s: float) -> dict[str, float]:
    """Counts (summed over recordings if wanted) + recording time → sensitivity, precision, f1, fp_per_24h.

    timescoring's formulas: sensitivity = TP / n_true, precision = TP / (TP + FP), F1 = 2TP / (2TP + FP + FN)
    with TP = detected seizures (NaN when undefined).
    """
    tp, fp, n_true = counts["n_detected"], counts["n_fp"], counts["n_true"]
    return {
        "sensitivity": _nan_div(tp, n_true),
        "precision": _nan_div(tp, tp + fp),
        "f1": _nan_div(2 * tp, 2 * tp + fp + (n_true - tp)) if n_true + fp else float("nan"),
        "fp_per_24h": _nan_div(fp, duration_s / 86400.0),
        **{k: int(v) for k, v in counts.items()},
        "duration_s": float(duration_s),
    }


def score_events(true_events: Sequence[Sequence[float]], pred_events: Sequence[Sequence[float]], duration_s: float,
                 pre_s: float = 30.0, post_s: float = 60.0, merge_gap_s: float = 90.0,
                 max_event_s: float = 300.0) -> dict[str, float]:
    """SzCORE event scoring of one recording of `duration_s` seconds (see `event_counts`)."""
    return event_metrics(event_counts(true_events, pred_events, duration_s, pre_s, post_s, merge_gap_s, max_event_s),
                         duration_s)


def score_samples(true_events: Sequence[Sequence[float]], pred_events: Sequence[Sequence[float]], duration_s: float,
                  fs: int = 1) -> dict[str, float]:
    """SzCORE sample scoring of one recording (seconds of seizure at `fs` = 1 Hz); fp_per_24h counts samples."""
    return event_metrics(sample_counts(true_events, pred_events, duration_s, fs), duration_s)


def _coverage_s(starts: np.ndarray, window_s: float) -> float:
    """Length of the union of windows [s, s + window_s] in seconds."""
    if len(starts) == 0:
        return 0.0
    s = np.sort(np.asarray(starts, dtype=np.float64))
    ends = np.maximum.accumulate(s + window_s)
    gaps = np.clip(s[1:] - ends[:-1], 0, None)
    return float(ends[-1] - s[0] - gaps.sum())


def true_events(starts_s: np.ndarray, window_s: float, vote: np.ndarray,
                overlap: Optional[np.ndarray] = None) -> list[tuple[float, float]]:
    """Reference seizures of one recording from its windows (starts sorted).

    With `overlap` (fraction of each window in seizure): runs of windows with overlap > 0,
    onset/offset recovered from the edge windows' fractions (exact for seizures longer than
    a window). Otherwise runs of windows with vote >= 0.5, spanning their windows.
    """
    starts = np.asarray(starts_s, dtype=np.float64)
    if overlap is None:
        return [(s, e) for s, e, _, _ in intervals_from_windows(starts, window_s, np.asarray(vote) >= 0.5)]
    ov = np.asarray(overlap, dtype=np.float64)
    out = []
    for s, e, i, j in intervals_from_windows(starts, window_s, ov > 0):
        onset = starts[i] + window_s * (1.0 - ov[i])  # the seizure runs to the first window's end
        offset = starts[j - 1] + window_s * ov[j - 1]  # … and from the last window's start
        if j - i == 1 or onset >= offset:  # shorter than a window: position unknown inside it
            onset, offset = s, e
        out.append((float(max(onset, s)), float(min(offset, e))))
    return out


@functools.lru_cache(maxsize=4096)
def _missed(truth: tuple, end: float, score: tuple) -> dict[str, int]:
    """Event counts of a recording without alarms (memoised: post-processing searches hit it often)."""
    return event_counts(list(truth), [], end, **dict(score))


Group = tuple[np.ndarray, np.ndarray, list, float]  # (window starts, probabilities, reference events, timeline end)


def _counts_oof(groups: list[Group], window_s: float, post: dict[str, float], score: dict[str, float],
                samples: bool = False) -> dict[str, int]:
    """Counts summed over recordings (SzCORE micro-average) of the events detected with `post` parameters."""
    total = {"n_true": 0, "n_detected": 0, "n_pred": 0, "n_fp": 0}
    for starts, prob, truth, end in groups:
        pred = detect_events(prob, starts, window_s, **post)
        if not pred and not truth:
            continue  # nothing to count
        if not pred and not samples:  # no alarms: only the (merged, split) reference count matters
            c = _missed(tuple(map(tuple, truth)), end, tuple(sorted(score.items())))
        else:
            c = sample_counts(truth, pred, end) if samples else event_counts(truth, pred, end, **score)
        for k, v in c.items():
            total[k] += v
    return total


# Post-processing searched on out-of-fold predictions (`tune_postprocessing`): the product of these grids.
# merge_gap_s is not searched: SzCORE scoring merges alarms closer than 90 s itself.
POST_GRID = {
    "threshold": [round(float(t), 2) for t in np.arange(0.05, 0.951, 0.05)],
    "smooth_windows": [1, 3, 5],
    "min_event_s": [0.0, 10.0, 20.0],
}
POST_DEFAULT = {"threshold": 0.5, "smooth_windows": 3, "min_event_s": 0.0, "merge_gap_s": 90.0, "max_event_s": 300.0}


def _oof_window(oof: pd.DataFrame, window_s: Optional[float]) -> tuple[pd.DataFrame, float]:
    """OOF table with `start_s` (parsed from CHB-MIT sample ids if absent) sorted, and the window length (s)."""
    need = ["recording_id", "start_s", "seizure_vote", "seizure_pred"]
    if "start_s" not in oof.columns and "sample_id" in oof.columns:
        # CHB-MIT sample ids end in the window start: "chb01_03_002990.0"
        parsed = oof["sample_id"].astype(str).str.extract(r"_(\d+(?:\.\d+)?)$")[0].astype(float)
        if parsed.notna().all():
            oof = oof.assign(start_s=parsed.to_numpy())
    missing = [c for c in need if c not in oof.columns]
    if missing:
        raise KeyError(f"OOF table is missing column(s) {missing} (has {list(oof.columns)})")
    if "duration_s" in oof.columns:
        ws = oof["duration_s"].to_numpy(dtype=np.float64)
        if len(ws) and not np.allclose(ws, ws[0]):
            raise ValueError(f"windows of different lengths in duration_s: {sorted(set(ws.tolist()))[:5]}")
        w = float(ws[0]) if len(ws) else float(window_s or 0.0)
    elif window_s is not None:
        w = float(window_s)
    else:
        raise KeyError("OOF table has no 'duration_s' column: pass window_s")
    return oof.sort_values(["recording_id", "start_s"], kind="stable"), w


def _oof_groups(df: pd.DataFrame, w: float) -> tuple[list[Group], float]:
    """Per recording (starts, probabilities, reference events, timeline end) and the scored time (s)."""
    has_ov = "seizure_overlap" in df.columns
    groups: list[Group] = []
    duration = 0.0
    for _, g in df.groupby("recording_id", sort=False):
        starts = g["start_s"].to_numpy(dtype=np.float64)
        truth = true_events(starts, w, g["seizure_vote"].to_numpy(), g["seizure_overlap"].to_numpy() if has_ov else None)
        groups.append((starts, g["seizure_pred"].to_numpy(dtype=np.float64), truth, float(starts.max() + w)))
        duration += _coverage_s(starts, w)
    return groups, duration


def _post_key(m: dict[str, float], post: dict[str, float]) -> tuple[float, float, float]:
    """Ranking of a post-processing choice: event F1, then fewer FP/24h, then threshold closer to 0.5."""
    f1 = -1.0 if np.isnan(m["f1"]) else m["f1"]
    fp = np.inf if np.isnan(m["fp_per_24h"]) else m["fp_per_24h"]
    return (f1, -fp, -abs(float(post["threshold"]) - 0.5))


def tune_postprocessing(oof: pd.DataFrame, grid: Optional[dict[str, Sequence[float]]] = None,
                        window_s: Optional[float] = None, **fixed: float) -> dict[str, Any]:
    """Search the post-processing grid (default POST_GRID) for the best pooled event F1 on an OOF table.

    Returns {"params": best post-processing, "event": its event metrics, "n_tried": grid size}.
    Ties prefer fewer false alarms per 24 h, then a threshold closer to 0.5.
    """
    df, w = _oof_window(oof, window_s)
    groups, duration = _oof_groups(df, w)
    grid = {**POST_GRID, **(grid or {})}
    base = {**POST_DEFAULT, **fixed}
    names = list(grid)
    best: Optional[tuple[tuple[float, float, float], dict[str, float], dict]] = None
    n = 0
    for combo in itertools.product(*(grid[k] for k in names)):
        post = {**base, **dict(zip(names, combo))}
        post["smooth_windows"] = int(post["smooth_windows"])
        m = event_metrics(_counts_oof(groups, w, post, SZCORE_PARAMS), duration)
        n += 1
        key = _post_key(m, post)
        if best is None or key > best[0]:
            best = (key, post, m)
    assert best is not None
    return {"params": best[1], "event": best[2], "n_tried": n}


def seizure_scores(
    oof: pd.DataFrame,
    threshold: float = 0.5,
    window_s: Optional[float] = None,
    smooth_windows: int = 3,
    merge_gap_s: float = 90.0,
    max_event_s: float = 300.0,
    min_event_s: float = 0.0,
    find_best: bool = False,
    thresholds: Optional[Sequence[float]] = None,
) -> dict[str, Any]:
    """Window, SzCORE event and sample scores of an OOF table (recording_id, start_s, seizure_vote, seizure_pred).

    Without `start_s`, window starts are read from CHB-MIT sample ids ('chb01_03_002990.0').
    Window metrics use hard labels seizure_vote >= 0.5. Events are detected per recording with
    the post-processing arguments and scored by `timescoring` (SzCORE defaults), counts summed
    over recordings. Reference seizures come from `seizure_overlap` when present, else from runs
    of positive windows. Window length: `duration_s` column, else `window_s`. FP/24h divides by
    the union of the windows (timescoring divides by the file length: equal for whole recordings).
    `find_best`: scan `thresholds` (default 0.05 … 0.95) for the best event F1 → `best_threshold`,
    `best_event`. Per-fold window AUROC and event F1 go under `folds` when a `fold` column exists.
    """
    df, w = _oof_window(oof, window_s)
    y = (df["seizure_vote"].to_numpy(dtype=np.float64) >= 0.5).astype(np.float64)
    prob = df["seizure_pred"].to_numpy(dtype=np.float64)
    win = window_metrics(y, prob, threshold)
    groups, duration = _oof_groups(df, w)
    post = {"threshold": float(threshold), "smooth_windows": int(smooth_windows), "merge_gap_s": merge_gap_s,
            "max_event_s": max_event_s, "min_event_s": min_event_s}
    ev = event_metrics(_counts_oof(groups, w, post, SZCORE_PARAMS), duration)
    smp = event_metrics(_counts_oof(groups, w, post, SZCORE_PARAMS, samples=True), duration)
    out: dict[str, Any] = {
        "threshold": float(threshold),
        "postprocessing": post,
        "auroc": win["auroc"],
        "auprc": win["auprc"],
        "event_sensitivity": ev["sensitivity"],
        "event_precision": ev["precision"],
        "event_f1": ev["f1"],
        "fp_per_24h": ev["fp_per_24h"],
        "sample_f1": smp["f1"],
        "window": win,
        "event": ev,
        "sample": smp,
        "n_recordings": len(groups),
        "hours": duration / 3600.0,
    }
    if find_best:
        grid = POST_GRID["threshold"] if thresholds is None else [float(t) for t in thresholds]
        best: Optional[tuple[tuple[float, float, float], float, dict]] = None
        for t in grid:
            m = event_metrics(_counts_oof(groups, w, {**post, "threshold": float(t)}, SZCORE_PARAMS), duration)
            key = _post_key(m, {"threshold": t})
            if best is None or key > best[0]:
                best = (key, float(t), m)
        assert best is not None
        out["best_threshold"] = best[1]
        out["best_event"] = best[2]
    if "fold" in df.columns and df["fold"].nunique() > 1:
        folds = {}
        for k, g in df.groupby("fold", sort=True):
            sub = seizure_scores(g.drop(columns="fold"), threshold, w, smooth_windows, merge_gap_s, max_event_s, min_event_s)
            folds[str(k)] = {"auroc": sub["auroc"], "auprc": sub["auprc"], "event_f1": sub["event_f1"],
                             "fp_per_24h": sub["fp_per_24h"]}
        out["folds"] = folds
    return out
