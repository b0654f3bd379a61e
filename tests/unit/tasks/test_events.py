"""Seizure metrics: window level against scikit-learn, event level on hand-built cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from hbac.tasks.events import (
    detect_events,
    events_to_frame,
    score_events,
    seizure_scores,
    true_events,
    window_metrics,
)

SZ = (1000.0, 1060.0)


# --------------------------------------------------------------------------- window level


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.2).astype(int)
    prob = np.round(np.clip(rng.normal(0.3 + 0.35 * y, 0.2), 0, 1), 2)  # rounding makes ties
    m = window_metrics(y, prob, threshold=0.5)
    pred = (prob >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    assert m["auroc"] == pytest.approx(roc_auc_score(y, prob), abs=1e-12)
    assert m["auprc"] == pytest.approx(average_precision_score(y, prob), abs=1e-12)
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (tp, fp, tn, fn)


def test_window_metrics_single_class() -> None:
    m = window_metrics(np.zeros(5), np.array([0.1, 0.7, 0.2, 0.9, 0.3]))
    assert np.isnan(m["auroc"]) and np.isnan(m["auprc"]) and np.isnan(m["sensitivity"])
    assert m["specificity"] == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="0/1"):
        window_metrics(np.array([0.0, 0.4]), np.array([0.1, 0.2]))


# --------------------------------------------------------------------------- SzCORE any-overlap scoring


@pytest.mark.parametrize(
    "pred, detected",
    [
        ((960.5, 970.5), True),  # ends 29.5 s before onset: inside the 30 s tolerance
        ((960.0, 970.0), False),  # ends exactly 30 s before onset: touching is not overlapping (0.1 s samples)
        ((1119.5, 1130.0), True),  # starts 59.5 s after offset
        ((1120.0, 1130.0), False),  # starts exactly 60 s after offset
        ((1030.0, 1040.0), True),  # inside
        ((900.0, 1150.0), True),  # covers it (shorter than the 300 s split)
    ],
)
def test_tolerance_edges(pred: tuple[float, float], detected: bool) -> None:
    s = score_events([SZ], [pred], duration_s=3600.0, pre_s=30.0, post_s=60.0)
    assert s["n_detected"] == int(detected) and s["n_fp"] == int(not detected)
    assert s["sensitivity"] == float(detected)


def test_counts_and_ratios() -> None:
    true = [(100.0, 150.0), (1000.0, 1060.0), (5000.0, 5030.0)]
    pred = [(90.0, 120.0), (1070.0, 1100.0), (3000.0, 3010.0), (4000.0, 4010.0)]
    s = score_events(true, pred, duration_s=12 * 3600.0)
    assert (s["n_true"], s["n_detected"], s["n_pred"], s["n_fp"]) == (3, 2, 4, 2)
    assert s["sensitivity"] == pytest.approx(2 / 3)
    assert s["precision"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))  # 2TP / (2TP + FP + FN)
    assert s["fp_per_24h"] == pytest.approx(4.0)  # 2 false alarms in 12 h
    # a 910 s prediction spanning two seizures is split into 300 s pieces: the middle one is a false alarm
    s2 = score_events(true[:2], [(100.0, 1010.0)], duration_s=86400.0)
    assert (s2["n_detected"], s2["n_pred"], s2["n_fp"]) == (2, 4, 1)
    # reference seizures closer than 90 s are one seizure
    assert score_events([(100.0, 150.0), (200.0, 230.0)], [(120.0, 130.0)], duration_s=3600.0)["n_true"] == 1
    # nothing to find, nothing found
    s3 = score_events([], [], duration_s=3600.0)
    assert np.isnan(s3["sensitivity"]) and np.isnan(s3["f1"]) and s3["fp_per_24h"] == 0.0
    # missed everything
    s4 = score_events(true, [], duration_s=3600.0)
    assert s4["sensitivity"] == 0.0 and s4["f1"] == 0.0 and np.isnan(s4["precision"])


# --------------------------------------------------------------------------- detection


def _grid(n: int, stride: float = 10.0) -> np.ndarray:
    return np.arange(n) * stride


def test_merge_close_events() -> None:
    starts = _grid(100)  # non-overlapping 10 s windows
    for gap, n_events in ((80.0, 1), (100.0, 2)):
        prob = np.zeros(100)
        prob[10:15] = 0.9  # [100, 150]
        first = int((150 + gap) / 10)
        prob[first : first + 3] = 0.8
        ev = detect_events(prob, starts, 10.0, threshold=0.5, smooth_windows=1, merge_gap_s=90.0)
        assert len(ev) == n_events, gap
        assert ev[0][0] == 100.0 and ev[-1][1] == 150 + gap + 30
        assert ev[0][2] == pytest.approx(0.9)


def test_split_long_event() -> None:
    starts = _grid(100)
    prob = np.zeros(100)
    prob[6:78] = 0.95  # 12 minutes: [60, 780]
    ev = detect_events(prob, starts, 10.0, threshold=0.5, smooth_windows=1, max_event_s=300.0)
    assert [(s, e) for s, e, _ in ev] == [(60.0, 360.0), (360.0, 660.0), (660.0, 780.0)]
    assert all(p == pytest.approx(0.95) for _, _, p in ev)


def test_smoothing_and_overlapping_windows() -> None:
    starts = _grid(50, stride=5.0)  # 10 s windows every 5 s
    prob = np.zeros(50)
    prob[20] = 0.9  # one isolated window
    assert detect_events(prob, starts, 10.0, 0.5, smooth_windows=3) == []
    ev = detect_events(prob, starts, 10.0, 0.5, smooth_windows=1)
    assert [(s, e) for s, e, _ in ev] == [(100.0, 110.0)]
    prob[20:26] = 0.9  # overlapping windows 100 … 135 → one event [100, 135]
    ev = detect_events(prob, starts, 10.0, 0.5, smooth_windows=3)
    assert len(ev) == 1 and ev[0][0] == 100.0 and ev[0][1] == 135.0
    # order of the input rows does not matter
    perm = np.random.default_rng(0).permutation(50)
    assert detect_events(prob[perm], starts[perm], 10.0, 0.5, smooth_windows=3) == ev
    df = events_to_frame(ev)
    assert list(df.columns) == ["start_s", "end_s", "peak_prob"] and len(df) == 1 and df.peak_prob[0] == pytest.approx(0.9)


def test_true_events_from_overlap() -> None:
    starts = _grid(60, stride=5.0)
    s, e = 103.0, 141.0
    overlap = np.clip(np.minimum(starts + 10, e) - np.maximum(starts, s), 0, None) / 10.0
    assert true_events(starts, 10.0, overlap >= 0.5, overlap) == [(s, e)]
    # without the overlap column: span of the positive windows
    assert true_events(starts, 10.0, (overlap >= 0.5).astype(float)) == [(100.0, 145.0)]


# --------------------------------------------------------------------------- OOF tables


def _oof() -> pd.DataFrame:
    rows = []
    for rec, seizures, alarm in (("chb01_01", [(300.0, 360.0)], 1200.0), ("chb01_02", [], None)):
        starts = _grid(360, stride=5.0)  # 30 minutes of 10 s windows
        ov = np.zeros(len(starts))
        for s, e in seizures:
            ov += np.clip(np.minimum(starts + 10, e) - np.maximum(starts, s), 0, None) / 10.0
        pred = np.where(ov > 0, 0.7, 0.05)
        if alarm is not None:
            pred[(starts >= alarm) & (starts < alarm + 30)] = 0.4  # a background false alarm
        rows.append(pd.DataFrame({"recording_id": rec, "start_s": starts, "duration_s": 10.0, "seizure_overlap": ov,
                                  "seizure_vote": (ov >= 0.5).astype(float), "seizure_pred": pred, "fold": int(rec[-1])}))
    return pd.concat(rows, ignore_index=True)


def test_seizure_scores_on_oof() -> None:
    oof = _oof()
    hours = 2 * (359 * 5 + 10) / 3600.0  # union of the windows of both recordings
    s = seizure_scores(oof, threshold=0.5)
    assert s["auroc"] == pytest.approx(1.0) and s["event_sensitivity"] == 1.0 and s["fp_per_24h"] == 0.0
    assert s["event"]["n_true"] == 1 and s["event_f1"] == 1.0 and s["hours"] == pytest.approx(hours)
    assert set(s["folds"]) == {"1", "2"}
    low = seizure_scores(oof, threshold=0.3)  # the false alarm now counts
    assert low["event"]["n_fp"] == 1 and low["fp_per_24h"] == pytest.approx(1 / (hours / 24))
    assert low["event_precision"] == 0.5
    best = seizure_scores(oof, threshold=0.3, find_best=True)
    assert 0.4 < best["best_threshold"] <= 0.7 and best["best_event"]["f1"] == 1.0
    # window length from an argument when the table has no duration_s
    no_dur = seizure_scores(oof.drop(columns=["duration_s", "seizure_overlap"]), window_s=10.0)
    assert no_dur["event_sensitivity"] == 1.0
    # window starts recovered from CHB-MIT sample ids
    ids = oof.assign(sample_id=[f"{r}_{t:08.1f}" for r, t in zip(oof.recording_id, oof.start_s)]).drop(columns="start_s")
    assert seizure_scores(ids)["event"] == s["event"]
    with pytest.raises(KeyError, match="duration_s"):
        seizure_scores(oof.drop(columns=["duration_s"]))
    with pytest.raises(KeyError, match="seizure_pred"):
        seizure_scores(oof.drop(columns=["seizure_pred"]))


def test_smooth_keeps_length_when_shorter_than_kernel():
    from hbac.tasks.events import smooth

    assert smooth(np.array([0.9]), 3).tolist() == [0.9]
    np.testing.assert_allclose(smooth(np.array([1.0, 0.0]), 3), [0.5, 0.5])
    np.testing.assert_allclose(smooth(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), 3), [0, 1 / 3, 1 / 3, 1 / 3, 0])
