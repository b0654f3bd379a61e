"""Our seizure scoring against `timescoring` (the SzCORE scoring library) on random annotation pairs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from timescoring.annotations import Annotation
from timescoring.scoring import EventScoring, SampleScoring

from hbac.tasks.events import detect_events, score_events, score_samples, seizure_scores, true_events

FS = 256  # the library's users build annotations at the EEG rate; the scorer resamples to 10 Hz


def _random_events(rng: np.random.Generator, duration: float, n_max: int, max_len: float) -> list[tuple[float, float]]:
    """Non-overlapping sorted events on a 1/FS grid."""
    n = int(rng.integers(0, n_max + 1))
    starts = np.sort(rng.uniform(0, duration - 1.0, n))
    out, last = [], -1.0
    for s in starts:
        s = np.round(s * FS) / FS
        e = min(duration, s + np.round(rng.uniform(1.0, max_len) * FS) / FS)
        if s > last:
            out.append((float(s), float(e)))
            last = e
    return out


def _reference(ref: list, hyp: list, duration: float, kind: str) -> dict[str, float]:
    n = int(round(duration * FS))
    r, h = Annotation(ref, FS, n), Annotation(hyp, FS, n)
    sc = EventScoring(r, h) if kind == "event" else SampleScoring(r, h)
    return {"sensitivity": sc.sensitivity, "precision": sc.precision, "f1": sc.f1, "fp_per_24h": sc.fpRate}


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=1e-9)


@pytest.mark.parametrize("kind", ["event", "sample"])
def test_random_pairs_agree_with_timescoring(kind: str) -> None:
    rng = np.random.default_rng(13)
    score = score_events if kind == "event" else score_samples
    n_checked = 0
    for _ in range(300):
        duration = float(np.round(rng.uniform(600, 4 * 3600)))
        ref = _random_events(rng, duration, 4, 400.0)  # long ones exercise the 300 s split
        hyp = _random_events(rng, duration, 10, 200.0)
        ours = score(ref, hyp, duration)
        theirs = _reference(ref, hyp, duration, kind)
        for k in ("sensitivity", "precision", "f1", "fp_per_24h"):
            assert _same(ours[k], theirs[k]), (kind, k, ref, hyp, duration, ours[k], theirs[k])
        n_checked += 1
    assert n_checked == 300


def test_pooled_oof_scores_equal_summed_timescoring_counts() -> None:
    """seizure_scores on an OOF table = timescoring per recording, counts summed (SzCORE's micro-average)."""
    rng = np.random.default_rng(7)
    rows, tp, fp, n_true, dur = [], 0, 0, 0, 0.0
    for r in range(6):
        starts = np.arange(0, 1800.0, 5.0)  # whole 30-minute recordings of 10 s windows
        seizures = _random_events(rng, 1790.0, 2, 120.0)
        ov = np.zeros(len(starts))
        for s, e in seizures:
            ov += np.clip(np.minimum(starts + 10, e) - np.maximum(starts, s), 0, None) / 10.0
        pred = np.clip(ov * 0.8 + rng.uniform(0, 0.45, len(starts)), 0, 1)
        for i in rng.integers(0, len(starts) - 4, 2):  # false-alarm bursts
            pred[i : i + 4] = 0.9
        rows.append(pd.DataFrame({"recording_id": f"r{r}", "start_s": starts, "duration_s": 10.0, "seizure_overlap": ov,
                                  "seizure_vote": (ov >= 0.5).astype(float), "seizure_pred": pred}))
        truth = true_events(starts, 10.0, ov >= 0.5, ov)
        hyp = [(s, e) for s, e, _ in detect_events(pred, starts, 10.0, 0.5)]
        n = int(round(1805.0 * 10))
        sc = EventScoring(Annotation(truth, 10, n), Annotation(hyp, 10, n))
        tp, fp, n_true, dur = tp + sc.tp, fp + sc.fp, n_true + sc.refTrue, dur + 1805.0
    s = seizure_scores(pd.concat(rows, ignore_index=True), threshold=0.5)
    assert n_true > 0 and fp > 0  # the case is not trivial
    assert s["event"]["n_detected"] == tp and s["event"]["n_fp"] == fp and s["event"]["n_true"] == n_true
    assert s["event_sensitivity"] == pytest.approx(tp / n_true)
    assert s["event_precision"] == pytest.approx(tp / (tp + fp))
    assert s["event_f1"] == pytest.approx(2 * tp / (2 * tp + fp + n_true - tp))
    assert s["fp_per_24h"] == pytest.approx(fp / (dur / 86400))
