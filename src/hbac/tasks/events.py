"""Seizure detection: window metrics, events from window probabilities, event scoring."""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

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
) -> list[Event]:
    """Window probabilities (N,) of one recording → events [(start_s, end_s, peak_prob)].

    Moving average over `smooth_windows` windows → smoothed >= threshold → runs of
    overlapping/adjacent windows → events closer than `merge_gap_s` merged → events longer
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


def event_counts(true_events: Sequence[Sequence[float]], pred_events: Sequence[Sequence[float]],
                 pre_s: float = 30.0, post_s: float = 60.0) -> dict[str, int]:
    """Any-overlap matching → counts n_true, n_detected, n_pred, n_tp_pred, n_fp."""
    t = np.asarray([(e[0], e[1]) for e in true_events], dtype=np.float64).reshape(-1, 2)
    q = np.asarray([(e[0], e[1]) for e in pred_events], dtype=np.float64).reshape(-1, 2)
    lo, hi = t[:, 0] - pre_s, t[:, 1] + post_s
    hit = (q[:, None, 0] <= hi[None]) & (q[:, None, 1] >= lo[None])  # (n_pred, n_true), closed intervals
    n_tp_pred = int(hit.any(axis=1).sum())
    return {
        "n_true": len(t),
        "n_detected": int(hit.any(axis=0).sum()),
        "n_pred": len(q),
        "n_tp_pred": n_tp_pred,
        "n_fp": len(q) - n_tp_pred,
    }


def event_metrics(counts: dict[str, Any], duration_s: float) -> dict[str, float]:
    """Counts (summed over recordings if wanted) + recording time → sensitivity, precision, f1, fp_per_24h."""
    sens = _nan_div(counts["n_detected"], counts["n_true"])
    prec = _nan_div(counts["n_tp_pred"], counts["n_pred"])
    if counts["n_true"] == 0 and counts["n_pred"] == 0:
        f1 = float("nan")
    else:
        s0 = 0.0 if np.isnan(sens) else sens
        p0 = 0.0 if np.isnan(prec) else prec
        f1 = 2 * s0 * p0 / (s0 + p0) if s0 + p0 > 0 else 0.0
    return {
        "sensitivity": sens,
        "precision": prec,
        "f1": float(f1),
        "fp_per_24h": _nan_div(counts["n_fp"], duration_s / 86400.0),
        **{k: int(v) for k, v in counts.items()},
        "duration_s": float(duration_s),
    }


def score_events(true_events: Sequence[Sequence[float]], pred_events: Sequence[Sequence[float]], duration_s: float,
                 pre_s: float = 30.0, post_s: float = 60.0) -> dict[str, float]:
    """Any-overlap event scoring of one recording (or pooled events): see the module docstring."""
    return event_metrics(event_counts(true_events, pred_events, pre_s, post_s), duration_s)


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


def _event_counts_oof(groups: list[tuple[np.ndarray, np.ndarray, list]], window_s: float, threshold: float,
                      smooth_windows: int, merge_gap_s: float, max_event_s: float, pre_s: float, post_s: float) -> dict[str, int]:
    total = {"n_true": 0, "n_detected": 0, "n_pred": 0, "n_tp_pred": 0, "n_fp": 0}
    for starts, prob, truth in groups:
        pred = detect_events(prob, starts, window_s, threshold, smooth_windows, merge_gap_s, max_event_s)
        for k, v in event_counts(truth, pred, pre_s, post_s).items():
            total[k] += v
    return total


def seizure_scores(
    oof: pd.DataFrame,
    threshold: float = 0.5,
    window_s: Optional[float] = None,
    smooth_windows: int = 3,
    merge_gap_s: float = 90.0,
    max_event_s: float = 300.0,
    pre_s: float = 30.0,
    post_s: float = 60.0,
    find_best: bool = False,
    thresholds: Optional[Sequence[float]] = None,
) -> dict[str, Any]:
    """Window and event scores of an OOF table (recording_id, start_s, seizure_vote, seizure_pred).

    Without `start_s`, window starts are read from CHB-MIT sample ids ('chb01_03_002990.0').

    Window metrics use hard labels seizure_vote >= 0.5. Events are detected per recording
    and counts summed over recordings; reference seizures come from `seizure_overlap` when
    present, else from runs of positive windows. Window length: `duration_s` column, else
    `window_s`. Recording time is the union of its windows. `find_best`: also scan
    `thresholds` (default 0.05 … 0.95) for the best event F1 (ties: fewer FP/24h, then
    closer to 0.5) → `best_threshold`, `best_event`. Per-fold window AUROC and event F1 go
    under `folds` when a `fold` column exists.
    """
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
    df = oof.sort_values(["recording_id", "start_s"], kind="stable")
    y = (df["seizure_vote"].to_numpy(dtype=np.float64) >= 0.5).astype(np.float64)
    prob = df["seizure_pred"].to_numpy(dtype=np.float64)
    win = window_metrics(y, prob, threshold)

    has_ov = "seizure_overlap" in df.columns
    groups: list[tuple[np.ndarray, np.ndarray, list]] = []
    duration = 0.0
    for _, g in df.groupby("recording_id", sort=False):
        starts = g["start_s"].to_numpy(dtype=np.float64)
        truth = true_events(starts, w, g["seizure_vote"].to_numpy(), g["seizure_overlap"].to_numpy() if has_ov else None)
        groups.append((starts, g["seizure_pred"].to_numpy(dtype=np.float64), truth))
        duration += _coverage_s(starts, w)
    kw = dict(smooth_windows=smooth_windows, merge_gap_s=merge_gap_s, max_event_s=max_event_s, pre_s=pre_s, post_s=post_s)
    ev = event_metrics(_event_counts_oof(groups, w, threshold, **kw), duration)
    out: dict[str, Any] = {
        "threshold": float(threshold),
        "auroc": win["auroc"],
        "auprc": win["auprc"],
        "event_sensitivity": ev["sensitivity"],
        "event_precision": ev["precision"],
        "event_f1": ev["f1"],
        "fp_per_24h": ev["fp_per_24h"],
        "window": win,
        "event": ev,
        "n_recordings": len(groups),
        "hours": duration / 3600.0,
    }
    if find_best:
        grid = np.round(np.arange(0.05, 0.951, 0.05), 4) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        best: Optional[tuple[tuple[float, float, float], float, dict]] = None
        for t in grid:
            m = event_metrics(_event_counts_oof(groups, w, float(t), **kw), duration)
            f1 = -1.0 if np.isnan(m["f1"]) else m["f1"]
            fp = np.inf if np.isnan(m["fp_per_24h"]) else m["fp_per_24h"]
            key = (f1, -fp, -abs(float(t) - 0.5))
            if best is None or key > best[0]:
                best = (key, float(t), m)
        assert best is not None
        out["best_threshold"] = best[1]
        out["best_event"] = best[2]
    if "fold" in df.columns and df["fold"].nunique() > 1:
        folds = {}
        for k, g in df.groupby("fold", sort=True):
            sub = seizure_scores(g.drop(columns="fold"), threshold, w, **kw)
            folds[str(k)] = {"auroc": sub["auroc"], "auprc": sub["auprc"], "event_f1": sub["event_f1"],
                             "fp_per_24h": sub["fp_per_24h"]}
        out["folds"] = folds
    return out
