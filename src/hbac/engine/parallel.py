"""`python -m hbac train CONFIG --gpus 0,1`: folds in parallel, one `train --fold K` subprocess per device at a time."""
from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from typing import Sequence

log = logging.getLogger(__name__)


def parse_devices(spec: str) -> list[str]:
    """'0,1' → ['0', '1']; 'cpu' entries run on the CPU (CUDA hidden), which is how the scheduling is tested."""
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    bad = [d for d in devices if d != "cpu" and not d.isdigit()]
    if not devices or bad:
        raise ValueError(f"--gpus {spec!r}: give CUDA device numbers or 'cpu', comma-separated (e.g. 0,1)")
    return devices


def fold_env(device: str, n_devices: int) -> dict[str, str]:
    """The child's environment: only its device visible, the cores shared out (HBAC_THREADS = cores / devices)."""
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = "" if device == "cpu" else device
    env["HBAC_THREADS"] = str(max(1, (os.cpu_count() or 1) // n_devices))
    return env


def run_folds(train_args: Sequence[str], folds: Sequence[int], devices: Sequence[str]) -> dict[int, str]:
    """Run `python -m hbac train <train_args> --fold K --resume` for every fold, one per device at a time → {fold: device}.

    Each device takes the next waiting fold when its previous one ends; a failed fold stops
    the scheduling of new ones and raises RuntimeError naming it (re-run with the same flags to resume).
    """
    todo: queue.Queue[int] = queue.Queue()
    for k in folds:
        todo.put(k)
    ran: dict[int, str] = {}
    failed: list[str] = []
    lock = threading.Lock()

    def worker(device: str) -> None:
        while not failed:
            try:
                k = todo.get_nowait()
            except queue.Empty:
                return
            cmd = [sys.executable, "-m", "hbac", "train", *train_args, "--fold", str(k), "--resume"]
            log.info("fold %d on device %s", k, device)
            r = subprocess.run(cmd, env=fold_env(device, len(devices)))
            with lock:
                ran[k] = device
                if r.returncode:
                    failed.append(f"fold {k} (device {device}, exit {r.returncode})")

    threads = [threading.Thread(target=worker, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise RuntimeError(f"--gpus: {', '.join(failed)} failed; run the same command again to resume")
    return ran
