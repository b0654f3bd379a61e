"""`train --gpus`'s scheduler (hbac.engine.parallel.run_folds): every fold once, a device takes the next waiting fold
when its previous one ends, a failed fold stops the scheduling. The child processes are stood in for here (their
command and environment are recorded); tests/e2e/test_parallel_folds.py runs real ones."""
from __future__ import annotations

import subprocess
import threading
import time

import pytest

import hbac.engine.parallel as parallel


def _fake_run(calls: list[tuple[int, str, str]], fail: frozenset[int] = frozenset(), seconds: float = 0.05):
    """A `subprocess.run` stand-in recording (fold, CUDA_VISIBLE_DEVICES, command head) and exiting 1 for `fail`."""
    lock = threading.Lock()

    def run(cmd, env):
        k = int(cmd[cmd.index("--fold") + 1])
        with lock:
            calls.append((k, env["CUDA_VISIBLE_DEVICES"], " ".join(cmd[1:4])))
        time.sleep(seconds * (1 + k % 2))  # folds of unequal length: the devices' turns interleave
        return subprocess.CompletedProcess(cmd, 1 if k in fail else 0)

    return run


def test_every_fold_runs_once_and_devices_take_the_next_fold(monkeypatch):
    calls: list[tuple[int, str, str]] = []
    monkeypatch.setattr(parallel.subprocess, "run", _fake_run(calls))
    ran = parallel.run_folds(["cfg.yaml"], [0, 1, 2, 3, 4], ["0", "1"])
    assert sorted(k for k, _, _ in calls) == [0, 1, 2, 3, 4]  # each fold exactly once
    assert sorted(ran) == [0, 1, 2, 3, 4] and set(ran.values()) == {"0", "1"}
    assert {d for _, d, _ in calls} == {"0", "1"} and all(ran[k] == d for k, d, _ in calls)  # the child saw its device
    assert all(c == "-m hbac train" for _, _, c in calls)
    assert sum(d == "0" for d in ran.values()) >= 2 and sum(d == "1" for d in ran.values()) >= 2  # more folds than devices


def test_a_failed_fold_stops_new_ones_and_is_named(monkeypatch):
    calls: list[tuple[int, str, str]] = []
    monkeypatch.setattr(parallel.subprocess, "run", _fake_run(calls, fail=frozenset({0})))
    with pytest.raises(RuntimeError, match=r"fold 0 \(device cpu, exit 1\)"):
        parallel.run_folds(["cfg.yaml"], [0, 1, 2, 3, 4, 5], ["cpu"])
    assert [k for k, _, _ in calls] == [0]  # one device: nothing started after the failure
