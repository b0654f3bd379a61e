"""Streaming post-processing: causal smoothing, minimum duration, refractory period, latencies."""
from __future__ import annotations

from hbac.inference.stream import OnlineDetector, latencies


def _feed(det: OnlineDetector, probs: list[float], stride: float = 5.0, window: float = 10.0) -> list[float]:
    return [window + i * stride for i, p in enumerate(probs) if det.update(p, window + i * stride)]


def test_alarm_needs_smoothed_run_and_respects_refractory() -> None:
    det = OnlineDetector(threshold=0.5, smooth_windows=2, min_windows=2, refractory_s=30.0)
    probs = [0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1] + [0.0] * 10 + [0.9, 0.9, 0.9]
    fired = _feed(det, probs)
    # smoothed: .1, .5, .9, .9, .5, .1, .5, .9, .5, .05, 0 … 0, .45, .9, .9 at t = 10, 15, 20, …
    # runs of smoothed >= 0.5: t=15–30, t=40–50 (10 s after the first: refractory), t=110–120
    assert fired == [20.0, 115.0]  # each alarm on the second window of its run
    assert det.alarms == fired


def test_latencies() -> None:
    seizures = [(100.0, 160.0), (1000.0, 1030.0), (5000.0, 5010.0)]
    assert latencies([80.0, 120.0, 1085.0, 3000.0], seizures) == [-20.0, 85.0, None]  # 1095 > offset + 60
