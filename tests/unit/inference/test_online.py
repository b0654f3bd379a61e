"""Streaming post-processing: causal smoothing, minimum duration, refractory period, latencies."""
from __future__ import annotations

import pytest

from hbac.inference.stream import OnlineDetector, latencies


def _feed(det: OnlineDetector, probs: list[float], stride: float = 5.0, window: float = 10.0) -> list[float]:
    return [window + i * stride for i, p in enumerate(probs) if det.update(p, window + i * stride)]


def test_alarm_needs_smoothed_run_and_respects_refractory() -> None:
    det = OnlineDetector(threshold=0.5, smooth_windows=2, min_windows=2, refractory_s=30.0)
    probs = [0.1, 0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1] + [0.0] * 10 + [0.9, 0.9, 0.9]
    fired = _feed(det, probs)
    # smoothed: 0.1, .5, .9, .9, .5, .1, .5, .9, .5 … → runs start at window 1 (t=15) and 6 (t=40, within 30 s of t=35)
    assert fired[0] == 25.0  # second positive smoothed window of the first run
    assert 55.0 not in fired  # the second run is inside the refractory period of the first
    assert fired[-1] == pytest.approx(10.0 + 20 * 5.0)  # after a long quiet stretch a new alarm is raised
    assert det.alarms == fired


def test_latencies() -> None:
    seizures = [(100.0, 160.0), (1000.0, 1030.0), (5000.0, 5010.0)]
    assert latencies([80.0, 120.0, 1095.0, 3000.0], seizures) == [-20.0, 95.0, None]
