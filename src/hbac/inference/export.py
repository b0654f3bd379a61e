"""`python -m hbac export EXPERIMENT --onnx [--int8]`: one ONNX graph for edge inference.

The graph maps raw windows `eeg` (B, C, T) float32 — preprocessed as the experiment's data config
says — to class probabilities `probs` (B, K): the softmax of every trained fold, with the
hemisphere-flip TTA when the experiment uses it, averaged, exactly as `detect` blends folds.
Beside it, `model.onnx.json` holds what inference needs without torch or the checkpoints
(classes, channels, fs, window, the data config, the stored post-processing), and
`export.json` the parity check against torch (max abs difference of probabilities on real-scale
random windows), the file size and the CPU latency per window (onnxruntime, one thread).
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn

from hbac.config import ExperimentConfig, from_dict, to_dict
from hbac.data.augment import flip_perms
from hbac.data.dataset import model_extras
from hbac.engine.checkpoint import load_checkpoint
from hbac.inference.predict import member_folds
from hbac.io import atomic_path, atomic_write_json, read_json
from hbac.models import build_model

log = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
OPSET = 17


class FoldAverage(nn.Module):
    """eeg (B, C, T) → mean over folds (and the flipped view, with TTA) of softmax probabilities (B, K)."""

    def __init__(self, models: list[nn.Module], perm: np.ndarray, tta_flip: bool) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)
        self.register_buffer("perm", torch.as_tensor(perm, dtype=torch.long))
        self.tta_flip = tta_flip

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        # the flip as one traced index_select on a buffer (ONNX graph); the permutation is `data.augment.flip_perms`'s
        views = [eeg, eeg.index_select(1, self.perm)] if self.tta_flip else [eeg]
        total = torch.zeros(())
        for m in self.models:
            for v in views:
                total = total + torch.softmax(m({"eeg": v}), dim=1)
        return total / (len(self.models) * len(views))


def _window(cfg: ExperimentConfig, ckpt: dict[str, Any]) -> tuple[int, float, float]:
    """(model input samples, window s, stride s) a stream is cut into: the data's sliding windows (EDF seizure
    datasets), else back-to-back windows of the checkpoint's input length."""
    fs, w = float(ckpt["fs"]), getattr(cfg.data.options, "windows", None)
    if w is None:
        n_times = int(ckpt["n_times"])
        return n_times, n_times / fs, n_times / fs
    return int(ckpt.get("n_times") or round(w.window_s * fs)), float(w.window_s), float(w.stride_s)


def load_folds(exp_dir: Path) -> tuple[FoldAverage, dict[str, Any]]:
    """The trained folds of an experiment as one eval-mode `FoldAverage` and the metadata inference needs."""
    models, meta = [], {}
    for path in member_folds(exp_dir, partial=True):
        ckpt = load_checkpoint(path, map_location="cpu")
        cfg = from_dict(ExperimentConfig, ckpt["config"], str(path))
        if ckpt.get("kind") == "features" or cfg.model.kind == "features":
            raise ValueError(f"{path}: a scikit-learn baseline cannot be exported to ONNX here (torch models only)")
        extras = model_extras(cfg)  # inputs its dataset caches beside the EEG
        if extras:
            raise ValueError(f"{path}: the model reads {', '.join(extras)} beside the EEG; export takes EEG-only models")
        m = build_model(dataclasses.replace(cfg.model, pretrained=False), n_classes=len(ckpt["classes"]), channels=ckpt["channels"],
                        fs=float(ckpt["fs"]), n_times=ckpt.get("n_times"), window_filter=ckpt.get("window_filter"))
        m.load_state_dict(ckpt["model"])
        models.append(m.eval())
        n_times, window_s, stride_s = _window(cfg, ckpt)
        meta = {"experiment": exp_dir.name, "classes": list(ckpt["classes"]), "channels": list(ckpt["channels"]),
                "fs": float(ckpt["fs"]), "n_times": n_times, "window_s": window_s,
                "stride_s": stride_s, "data": to_dict(cfg.data), "tta_flip": bool(cfg.tta.hemisphere_flip)}
    meta["folds"] = len(models)
    scores = exp_dir / "scores.json"
    post = read_json(scores).get("postprocessing") if scores.exists() else None
    meta["postprocessing"] = post.get("params") if isinstance(post, dict) else None
    return FoldAverage(models, flip_perms(meta["channels"])["eeg"], meta["tta_flip"]).eval(), meta


def _windows(meta: dict[str, Any], n: int, seed: int) -> np.ndarray:
    """(n, C, T) float32 test windows at EEG scale: 1/f-ish noise of ~30 µV (or unit scale when standardised)."""
    rng = np.random.default_rng(seed)
    c, t = len(meta["channels"]), meta["n_times"]
    x = np.cumsum(rng.standard_normal((n, c, t)), axis=2)
    x -= x.mean(axis=2, keepdims=True)
    x /= x.std(axis=2, keepdims=True) + 1e-6
    scale = 1.0 if meta["data"]["eeg"].get("standardize") else 30.0
    return (scale * x).astype(np.float32)


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session with `threads` intra-op threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def latency_ms(run: Any, x: np.ndarray, repeats: int = 30) -> float:
    """Median milliseconds of `run(x)` over `repeats` calls after two warm-up calls."""
    run(x)
    run(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def _check(model: FoldAverage, path: Path, x: np.ndarray) -> dict[str, float]:
    """Parity (max abs probability difference vs torch), size and per-window CPU latency of one ONNX file."""
    sess = session(path)
    got = sess.run(["probs"], {"eeg": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    one = x[:1]
    return {
        "max_abs_diff": float(np.abs(got - want).max()),
        "size_bytes": int(path.stat().st_size),
        "latency_ms_per_window": latency_ms(lambda a: sess.run(["probs"], {"eeg": a}), one),
        "latency_ms_per_window_batch32": latency_ms(lambda a: sess.run(["probs"], {"eeg": a}), x[:32], 10) / min(32, len(x)),
    }


def export_onnx(exp_dir: Path, out_dir: Optional[Path] = None, int8: bool = False, n_check: int = 64,
                seed: int = 0) -> dict[str, Any]:
    """Export an experiment's folds as one ONNX graph (+ int8 copy) and check it; returns the export report."""
    exp_dir = Path(exp_dir)
    out_dir = Path(out_dir) if out_dir is not None else exp_dir / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    model, meta = load_folds(exp_dir)
    path = out_dir / ONNX_NAME
    dummy = torch.from_numpy(_windows(meta, 2, seed))
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(model, (dummy,), str(tmp), input_names=["eeg"], output_names=["probs"], opset_version=OPSET,
                          dynamic_axes={"eeg": {0: "batch"}, "probs": {0: "batch"}}, dynamo=False)
    x = _windows(meta, n_check, seed + 1)
    report: dict[str, Any] = {"experiment": meta["experiment"], "folds": meta["folds"], "onnx": str(path),
                              "fp32": _check(model, path, x)}
    with torch.no_grad():
        report["torch_latency_ms_per_window"] = latency_ms(lambda a: model(torch.from_numpy(a)), x[:1])
    if int8:
        # here, not at the top: onnxruntime.quantization imports the onnx package (1 s, ml_dtypes), which only
        # `--int8` needs; `stream` and `detect --onnx` import this module for the session alone
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process

        qpath = out_dir / "model.int8.onnx"
        with tempfile.TemporaryDirectory(dir=out_dir) as work, atomic_path(qpath) as tmp:
            pre = Path(work) / "pre.onnx"
            quant_pre_process(str(path), str(pre))  # folded constants → initializers, shapes inferred
            quantize_dynamic(str(pre), str(tmp), weight_type=QuantType.QInt8)
        report["int8"] = {**_check(model, qpath, x), "onnx": str(qpath)}
    atomic_write_json(out_dir / f"{ONNX_NAME}.json", meta)
    atomic_write_json(out_dir / "export.json", report)
    f = report["fp32"]
    log.info("%s → %s: %d fold(s), %.1f kB, max |Δp| %.2e, %.3f ms/window (onnxruntime, 1 thread; torch %.3f ms)",
             exp_dir.name, path, meta["folds"], f["size_bytes"] / 1024, f["max_abs_diff"], f["latency_ms_per_window"],
             report["torch_latency_ms_per_window"])
    return report


class OnnxDetector:
    """An exported model: `predict(windows (N, C, T) float32) → probs (N, K)` with onnxruntime, plus its metadata."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        path = Path(path)
        side = path.parent / f"{ONNX_NAME}.json"
        if not path.exists():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        if not side.exists():
            raise FileNotFoundError(f"ONNX metadata not found: {side} (written by `python -m hbac export EXP --onnx`)")
        self.path = path
        self.meta = read_json(side)
        self.sess = session(path, threads)

    def predict(self, windows: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, C, T) float32 → (N, K) float64 probabilities."""
        out = [self.sess.run(["probs"], {"eeg": np.ascontiguousarray(windows[i : i + batch_size], dtype=np.float32)})[0]
               for i in range(0, len(windows), batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(self.meta["classes"])))
