"""`python -m hbac stream FILE.edf [--speed 1.0]`: replay a recording as a live feed and raise alarms online.

The EDF is revealed in chunks of `chunk_s` seconds at `speed` × real time (0: as fast as
possible). Each time a new window (`window_s` every `stride_s`, as trained) is complete, the
last `context_s` seconds before it plus the window are preprocessed exactly as the model's
data config says (the same `signals.preprocess`; the context absorbs the filters' edge effects)
and scored by the model (the fold average in torch, or an exported ONNX file). Online
post-processing is causal: the mean of the last `smooth_windows` probabilities ≥ threshold,
held for `min_event_s`, raises an alarm; a new alarm needs `merge_gap_s` seconds without a
positive window. Reported: alarm times (the end of the window that raised it: when the data
existed), detection latency per reference seizure (first alarm in [onset − 30 s, offset + 60 s]
minus onset), and CPU seconds per second of EEG.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from hbac.config import DataConfig, from_dict
from hbac.datasets.edf_montage import read_any_edf
from hbac.inference.detect import default_postprocessing, event_class, resolve_detector
from hbac.inference.export import OnnxDetector, load_folds
from hbac.io import atomic_write_json
from hbac.signals.filters import preprocess
from hbac.tasks import task_from_classes
from hbac.tasks.events import POST_DEFAULT, SZCORE_PARAMS

log = logging.getLogger(__name__)


@dataclass
class OnlineDetector:
    """Causal post-processing of a stream of window probabilities → alarm times (s)."""

    threshold: float
    smooth_windows: int = 1
    min_windows: int = 1  # consecutive positive smoothed windows before an alarm
    refractory_s: float = 90.0
    history: list[float] = field(default_factory=list)
    run: int = 0
    last_positive_s: float = -np.inf
    gap_s: float = np.inf
    alarms: list[float] = field(default_factory=list)

    def update(self, prob: float, t_end_s: float) -> bool:
        """Add one window's probability (window ending at t_end_s); True when it raises an alarm."""
        self.history.append(float(prob))
        p = float(np.mean(self.history[-self.smooth_windows:]))
        if p < self.threshold:
            self.run = 0
            return False
        self.run += 1
        if self.run == 1:  # a run starts: how long since the last positive window
            self.gap_s = t_end_s - self.last_positive_s
        self.last_positive_s = t_end_s
        if self.run == self.min_windows and (not self.alarms or self.gap_s > self.refractory_s):
            self.alarms.append(t_end_s)
            return True
        return False


def _torch_scorer(exp_dir: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    model, meta = load_folds(exp_dir)

    def score(w: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(w)).numpy()

    return score, meta


def latencies(alarms: Sequence[float], seizures: Sequence[tuple[float, float]],
              pre_s: float = SZCORE_PARAMS["pre_s"], post_s: float = SZCORE_PARAMS["post_s"]) -> list[Optional[float]]:
    """Per reference seizure: first alarm within [onset − pre_s, offset + post_s] minus onset (s), None if missed."""
    out: list[Optional[float]] = []
    for on, off in seizures:
        hits = [a for a in alarms if on - pre_s <= a <= off + post_s]
        out.append(float(min(hits) - on) if hits else None)
    return out


def stream(edf: Path, outputs: Path = Path("outputs"), name: Optional[str] = None, onnx: Optional[Path] = None,
           speed: float = 1.0, chunk_s: float = 1.0, context_s: float = 20.0,
           seizures: Optional[Sequence[tuple[float, float]]] = None, threshold: Optional[float] = None,
           out: Optional[Path] = None) -> dict[str, Any]:
    """Replay `edf` through a trained experiment (or an exported ONNX model); returns the stream report."""
    edf = Path(edf)
    if onnx is not None:
        det = OnnxDetector(Path(onnx))
        score, meta = (lambda w: det.predict(w)), det.meta
        post = {**POST_DEFAULT, **(meta.get("postprocessing") or {})}
    else:
        entry, members = resolve_detector(Path(outputs), name)
        if len(members) != 1:
            raise ValueError(f"stream takes one experiment, {entry!r} is an ensemble; pass --name EXPERIMENT")
        score, meta = _torch_scorer(Path(outputs) / next(iter(members)))
        post = default_postprocessing(Path(outputs) / entry)
    if threshold is not None:
        post["threshold"] = float(threshold)
    data = from_dict(DataConfig, meta["data"], str(edf))
    fs, n_win = float(meta["fs"]), int(meta["n_times"])
    raw, fs_in, names = read_any_edf(edf, fs_out=None, montage=data.eeg.montage)  # the "device": native samples
    stride, n_win_in = int(round(meta["stride_s"] * fs_in)), int(round(meta["window_s"] * fs_in))
    if list(names) != list(meta["channels"]):
        raise ValueError(f"{edf}: montage gives {names}, the model expects {meta['channels']}")
    k_event = list(meta["classes"]).index(event_class(task_from_classes(meta["classes"]), str(edf)))
    online = OnlineDetector(float(post["threshold"]), int(post["smooth_windows"]),
                            max(1, int(round(float(post["min_event_s"]) / meta["stride_s"]))), float(post["merge_gap_s"]))
    ctx, chunk = int(round(context_s * fs_in)), max(1, int(round(chunk_s * fs_in)))
    e = data.eeg
    n_total, next_end, cpu, probs = raw.shape[1], n_win_in, 0.0, []
    t_wall0 = time.perf_counter()
    for arrived in range(chunk, n_total + chunk, chunk):
        arrived = min(arrived, n_total)
        if speed > 0:  # wait until the chunk "exists" in replayed time
            time.sleep(max(0.0, arrived / fs_in / speed - (time.perf_counter() - t_wall0)))
        while next_end <= arrived:
            c0 = time.process_time()
            seg = raw[:, max(0, next_end - n_win_in - ctx) : next_end]
            y = preprocess(seg, fs_in, nan=e.nan, band=e.bandpass, notch_hz=e.notch_hz, clip_uv=e.clip_uv,
                           standardize=e.standardize, fs_out=fs,
                           ica=(e.ica_eog_corr, e.ica_emg_ratio) if e.ica else None, channels=names)
            p = float(score(np.ascontiguousarray(y[None, :, -n_win:], dtype=np.float32))[0, k_event])
            fired = online.update(p, next_end / fs_in)
            cpu += time.process_time() - c0
            probs.append(p)
            if fired:
                log.warning("ALARM at %.1f s (p=%.2f)", next_end / fs_in, p)
            next_end += stride
    lat = latencies(online.alarms, seizures or [])
    report = {"edf": str(edf), "model": str(onnx) if onnx else meta["experiment"], "postprocessing": post,
              "alarms_s": online.alarms, "seizures": [list(s) for s in seizures or []], "latency_s": lat,
              "n_windows": len(probs), "eeg_s": n_total / fs_in, "cpu_s": cpu,
              "cpu_s_per_eeg_s": cpu / max(n_total / fs_in, 1e-9), "wall_s": time.perf_counter() - t_wall0,
              "speed": speed, "probs": probs}
    if out is not None:
        atomic_write_json(out, report)
    for (on, off), la in zip(seizures or [], lat):
        log.info("seizure %.1f–%.1f s: %s", on, off, "missed" if la is None else f"detected after {la:+.1f} s")
    log.info("%s: %d window(s), %d alarm(s), %.4f CPU s per s of EEG", edf.name, len(probs), len(online.alarms),
             report["cpu_s_per_eeg_s"])
    return report
