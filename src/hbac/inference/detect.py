"""`python -m hbac detect EDF`: seizure detection on any EDF with a trained CHB-MIT experiment or ensemble.

For every member experiment (one experiment, or an ensemble's members with their
`weights.json` blend weights): the EDF is read with `read_any_edf` (µV, the 18 bipolar
pairs picked or derived by name), preprocessed exactly as the member's checkpoints say
(`signals.preprocess` with its `EEGParams`, resampled to its rate), cut into the windows it
was trained on (`window_s` every `stride_s`), and every window is predicted by every fold's
`best.pt` (mean of the folds). Window probabilities → `events.detect_events` at the
post-processing the entry's `scores.json` stores (threshold, smoothing, minimum event length,
chosen on its out-of-fold predictions by `events.tune_postprocessing`; `--threshold` overrides the
threshold).

Outputs in `out_dir` (default `<outputs>/detect/<edf stem>/`), written atomically:
`windows.csv` (start_s, end_s, seizure_prob), `events.csv` (start_s, end_s, peak_prob), `events.tsv` (SzCORE),
`timeline.png` (probability timeline above a few EEG channels) and `detect.json`
(which model, threshold, recording length, events).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, default_collate

from hbac.config import DataConfig, ExperimentConfig, from_dict, params_hash, to_dict
from hbac.data.dataset import (
    WindowDataset,
    experiment_dataset,
    model_extras,
    model_n_times,
)
from hbac.datasets.edf import read_edf
from hbac.datasets.edf_montage import read_any_edf, resolve_montage, sliding_windows
from hbac.engine.loop import predict_loader
from hbac.engine.checkpoint import load_checkpoint
from hbac.engine.runtime import configure_threads, device_auto, place_model
from hbac.errors import DataError
from hbac.inference.predict import member_folds, resolve_members
from hbac.io import atomic_write_csv, atomic_write_json, read_json
from hbac.leaderboard import build_leaderboard
from hbac.models import build_model
from hbac.plotting import save_png, subplots
from hbac.signals.filters import preprocess
from hbac.signals.montage import montage_pairs
from hbac.tasks import (
    Task,
    event_datasets,
    get_task,
    task_for,
    task_from_classes,
    task_names,
)
from hbac.tasks.events import (
    POST_DEFAULT,
    detect_events,
    events_to_frame,
    write_events_tsv,
)

log = logging.getLogger(__name__)


DEFAULT_THRESHOLD = 0.5


# channels drawn under the timeline (temporal chains of both sides), when the montage has them
PLOT_CHANNELS = ("FP1-F7", "F7-T7", "T7-P7", "FP2-F8", "F8-T8", "T8-P8")


PLOT_MAX_POINTS = 8000  # per trace; longer signals are drawn as a min/max envelope


@dataclass
class RecordingCache:
    """One preprocessed recording shaped like `hbac.cache.Cache`, so `hbac.data.WindowDataset` reads it.

    eeg: (n_times, n_chans) float32, time-major as in a cache; samples: the window table
    (sample_id, recording_id, start_s, duration_s, <class>_vote placeholders, eeg_row, eeg_lo, eeg_hi).
    """

    path: Path
    eeg: np.ndarray
    fs: float
    channels: list[str]
    classes: list[str]
    samples: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    spec: None = None
    specs: None = None
    window_filter: Optional[dict[str, Any]] = None  # what the model applies per window (as `Cache.window_filter`)

    def __len__(self) -> int:
        return len(self.samples)

    def window(self, i: int) -> np.ndarray:
        """Window i as (n_chans, n_times) float32."""
        r = int(self.samples["eeg_row"].iloc[i])
        n = int(round(float(self.samples["duration_s"].iloc[i]) * self.fs))
        return np.ascontiguousarray(self.eeg[r : r + n].T)


def _is_ensemble(entry_dir: Path) -> bool:
    return (entry_dir / "weights.json").exists()


def _has_events(task_name: Any) -> bool:
    """Whether a leaderboard row's task turns a class probability into events (`Task.event_class`)."""
    return task_name in task_names() and get_task(task_name).event_class is not None


def event_class(task: Task, source: str) -> str:
    """The class whose probability becomes events; ValueError naming `source` for a task without events."""
    if task.event_class is None:
        raise ValueError(f"{source}: task {task.name!r} has no events; detect needs a model of a task with events "
                         f"(datasets: {', '.join(event_datasets())})")
    return task.event_class


def best_event_entry(outputs: Path) -> str:
    """Name of the best complete experiment or ensemble of a task with events on the leaderboard of `outputs`
    (ranked by that task's metric)."""

    lb = build_leaderboard(outputs)
    if len(lb):
        lb = lb[lb["task"].map(_has_events).astype(bool) & lb["complete"].astype(bool) & lb["rank"].notna()]
    if not len(lb):
        raise FileNotFoundError(
            f"no complete experiment or ensemble of a task with events under {outputs} (datasets: "
            f"{', '.join(event_datasets())}); train one first, e.g. `python -m hbac train configs/chbmit_eeg1d.yaml`, "
            "or pass --outputs/--name"
        )
    best = lb.iloc[0]
    log.info("using the best %s entry on the leaderboard: %s (%s, CV %s %.4f)", best["task"], best["name"], best["kind"],
             best["metric"], best["cv"])
    return str(best["name"])


def resolve_detector(outputs: Path, name: Optional[str] = None) -> tuple[str, dict[str, float]]:
    """(entry name, {member experiment: blend weight}) for an experiment, an ensemble, or the best entry with events."""

    outputs = Path(outputs)
    name = name or best_event_entry(outputs)
    entry = outputs / name
    if not entry.is_dir():
        have = sorted(p.name for p in outputs.iterdir() if p.is_dir() and (p / "config.yaml").exists()) if outputs.is_dir() else []
        raise FileNotFoundError(f"no experiment or ensemble {name!r} under {outputs} (found: {', '.join(have) or 'none'})")
    if _is_ensemble(entry):
        members = resolve_members(outputs, ensemble=name)
        if not members:
            raise ValueError(f"ensemble {name!r}: every member has weight 0 in {entry / 'weights.json'}")
        return name, members
    return name, {name: 1.0}


def default_postprocessing(entry_dir: Path) -> dict[str, float]:
    """The entry's post-processing: `scores.json` → postprocessing → params (chosen on its OOF predictions),
    else the seizure task's chosen `threshold` (older files: seizure → best_threshold) with the default smoothing, else POST_DEFAULT (threshold 0.5)."""
    post = dict(POST_DEFAULT)
    path = Path(entry_dir) / "scores.json"
    if not path.exists():
        return post
    scores = read_json(path)
    tuned = scores.get("postprocessing")
    if isinstance(tuned, dict) and isinstance(tuned.get("params"), dict):
        post.update({k: v for k, v in tuned["params"].items() if k in POST_DEFAULT and _finite(v)})
        return post
    seizure = scores.get("seizure") if isinstance(scores.get("seizure"), dict) else {}
    for t in (scores.get("threshold"), seizure.get("best_threshold")):  # the seizure task's chosen threshold
        if _finite(t) and 0.0 < t < 1.0:
            post["threshold"] = float(t)
            break
    return post


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def default_threshold(entry_dir: Path) -> float:
    """The entry's event threshold (see `default_postprocessing`)."""
    return float(default_postprocessing(entry_dir)["threshold"])


def window_starts(duration_s: float, window_s: float, stride_s: float) -> np.ndarray:
    """Starts (n,) in seconds of the whole windows of `window_s` every `stride_s` in a recording."""
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window_s and stride_s must be positive, got {window_s}, {stride_s}")
    if duration_s + 1e-9 < window_s:
        return np.zeros(0)
    n = int(math.floor((duration_s - window_s) / stride_s + 1e-9)) + 1
    return np.round(np.arange(n) * stride_s, 6)


def read_preprocessed(edf: Path, data: DataConfig, fs: float) -> tuple[np.ndarray, list[str]]:
    """EDF → ((n_chans, n_times) float32 at `fs` Hz, channel names), preprocessed as `data.eeg` says.

    The montage's channels are read at their native rate when they share one (then filtered
    and resampled as the cache builder does), otherwise resampled to `fs` on reading.
    """

    e = data.eeg
    rec = read_edf(edf)
    used, _, _ = resolve_montage(rec.labels, montage_pairs(e.montage))
    rates = rec.fs[used] if used else np.array([fs])
    native = bool(np.all(rates == rates[0]))
    x, fs_in, names = read_any_edf(edf, fs_out=None if native else fs, montage=e.montage)
    per_rec = e.filter_on == "recording"  # `window`: the model filters each window, as in training
    y = preprocess(x, float(fs_in), nan=e.nan, band=e.bandpass if per_rec else None, notch_hz=e.notch_hz if per_rec else None, clip_uv=e.clip_uv,
                   standardize=e.standardize, fs_out=fs, ica=(e.ica_eog_corr, e.ica_emg_ratio) if e.ica else None,
                   channels=names)
    return y, names


def recording_cache(edf: Path, x: np.ndarray, fs: float, channels: Sequence[str], classes: Sequence[str],
                    window_s: float, stride_s: float, key: str = "", params: Optional[dict[str, Any]] = None,
                    window_filter: Optional[dict[str, Any]] = None, dataset: str = "") -> RecordingCache:
    """A preprocessed recording x (C, T) → a `RecordingCache` with one row per window (`dataset`: the model's, in meta)."""
    n_times = x.shape[1]
    duration = n_times / fs
    starts = window_starts(duration, window_s, stride_s)
    if len(starts) == 0:

        raise DataError(f"{edf}: {duration:.1f} s of signal is shorter than one {window_s:g} s window")
    stem = Path(edf).stem
    table = pd.DataFrame({
        "sample_id": [f"{stem}_{s:08.1f}" for s in starts],
        "recording_id": stem,
        "group": "",
        "start_s": starts,
        "duration_s": float(window_s),
        **{f"{c}_vote": 0.0 for c in classes},  # unknown: placeholders for WindowDataset
        "n_votes": 1,
        "eeg_row": np.rint(starts * fs).astype(np.int64),
        "eeg_lo": 0,
        "eeg_hi": int(n_times),
    })
    meta = {"dataset": dataset, "classes": list(classes), "fs": fs, "channels": list(channels), "hash": key,
            "created": datetime.now(timezone.utc).isoformat(), "n_samples": len(table), "n_recordings": 1,
            "params": dict(params or {})}
    return RecordingCache(Path(edf), np.ascontiguousarray(x.T, dtype=np.float32), float(fs), list(channels),
                          list(classes), table, meta, window_filter=window_filter)


def _member_config(exp_dir: Path, ckpt: dict[str, Any], path: Path) -> ExperimentConfig:
    cfg = from_dict(ExperimentConfig, ckpt["config"], str(path))
    classes = list(ckpt.get("classes", []))
    try:
        task = task_for(cfg, classes)
    except ValueError as e:
        raise ValueError(f"{exp_dir.name}: {e}; detect needs a model of a task with events") from None
    event_class(task, f"{exp_dir.name} (dataset {cfg.data.dataset!r}, classes {classes})")
    return cfg


def predict_member(exp_dir: Path, edf: Path, memo: dict[str, RecordingCache], batch_size: int = 64,
                   device: Optional[torch.device] = None, progress: bool = True) -> tuple[RecordingCache, np.ndarray]:
    """Mean over an experiment's folds of the window probabilities (N, K) on one EDF, and its windows.

    `memo` keeps preprocessed recordings by preprocessing parameters, so members that share
    them read the EDF once.
    """


    device = device or device_auto()
    paths = member_folds(exp_dir, partial=True)  # `train --fold 0` is enough to detect
    total: Optional[np.ndarray] = None
    cache: Optional[RecordingCache] = None
    for path in paths:
        ckpt = load_checkpoint(path, map_location="cpu")
        cfg = _member_config(exp_dir, ckpt, path)
        fs = float(ckpt["fs"])
        w = sliding_windows(cfg.data)
        key = params_hash({"eeg": to_dict(cfg.data.eeg), "fs": fs, "window_s": w.window_s, "stride_s": w.stride_s,
                           "classes": list(ckpt["classes"]), "edf": str(Path(edf).resolve())})
        if key not in memo:
            x, names = read_preprocessed(edf, cfg.data, fs)
            memo[key] = recording_cache(edf, x, fs, names, ckpt["classes"], w.window_s, w.stride_s, key,
                                        params={"eeg": to_dict(cfg.data.eeg)}, window_filter=cfg.data.window_filter(),
                                        dataset=cfg.data.dataset)
        cache = memo[key]
        if list(ckpt["channels"]) != cache.channels:
            raise ValueError(f"{path}: trained on channels {ckpt['channels']}, the montage gives {cache.channels}")
        n_win = model_n_times(cfg, w.window_s, fs)  # model.window_s: a centred crop of the window
        if int(ckpt.get("n_times", n_win)) != n_win:
            raise ValueError(f"{path}: trained on {ckpt['n_times']}-sample windows, its config gives {n_win}")
        if ckpt.get("kind") == "features":

            # local import: scikit-learn + skops (about 1.8 s at start-up) only for feature-model members
            from hbac.features.baseline import predict_features

            p = predict_features(ckpt, cache, cache.samples, progress=progress, source=str(path))
        else:
            extras = model_extras(cfg)  # inputs its dataset caches beside the EEG
            if extras:
                raise ValueError(f"{path}: the model reads {', '.join(extras)} beside the EEG, which an EDF does not have")
            model = build_model(dataclasses.replace(cfg.model, pretrained=False), n_classes=len(ckpt["classes"]), channels=ckpt["channels"], fs=fs,
                                n_times=ckpt.get("n_times"), window_filter=cache.window_filter)
            model.load_state_dict(ckpt["model"])
            model = place_model(model, device)
            loader = DataLoader(experiment_dataset(cfg, cache, cache.samples), batch_size=batch_size, shuffle=False, num_workers=0)
            p = predict_loader(model, loader, device, cfg.train.amp, tta_flip=cfg.tta.hemisphere_flip,
                               offsets_s=cfg.tta.offsets_s, progress=progress, desc=f"{exp_dir.name} {path.parent.name}")
        total = p if total is None else total + p
    assert cache is not None and total is not None
    return cache, total / len(paths)


def explain_strip(exp_dir: Path, cache: RecordingCache, prob: np.ndarray, batch_size: int = 16) -> Optional[np.ndarray]:
    """Grad-CAM of the seizure class over the whole recording (n_times,): each window's map weighted by its seizure
    probability, overlapping windows averaged; from the experiment's first fold (None for feature models)."""
    # imported here: captum, scipy.signal and matplotlib cost every detect process ~2 CPU-s at start-up, for --explain only
    from hbac.explain.gradcam import stitch, time_cam

    path = member_folds(exp_dir)[0]
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("kind") == "features":
        log.warning("%s: a feature model has no Grad-CAM; no explanation strip", exp_dir.name)
        return None
    cfg = _member_config(exp_dir, ckpt, path)
    model = build_model(dataclasses.replace(cfg.model, pretrained=False), n_classes=len(ckpt["classes"]), channels=ckpt["channels"],
                        fs=float(ckpt["fs"]), n_times=ckpt.get("n_times"), window_filter=ckpt.get("window_filter"))
    model.load_state_dict(ckpt["model"])
    model.eval()
    target = list(ckpt["classes"]).index(event_class(task_for(cfg), exp_dir.name))
    ds = WindowDataset(cache, cache.samples)
    duration = float(cache.samples["duration_s"].iloc[0])
    cams = []
    for i in range(0, len(ds), batch_size):
        batch = default_collate([ds[j] for j in range(i, min(len(ds), i + batch_size))])
        cams.append(time_cam(model, {"eeg": batch["eeg"]}, target, duration)[0])
    starts = cache.samples["eeg_row"].to_numpy(np.int64)
    return stitch(np.concatenate(cams), starts, np.asarray(prob, np.float64), len(cache.eeg))


def _envelope(x: np.ndarray, fs: float, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(t (n,), y (C, n)) for plotting: the signal itself, or per-block min/max when longer than max_points."""
    c, n = x.shape
    if n <= max_points:
        return np.arange(n) / fs, x
    f = int(math.ceil(2 * n / max_points))
    nb = n // f
    blocks = x[:, : nb * f].reshape(c, nb, f)
    y = np.stack([blocks.min(axis=2), blocks.max(axis=2)], axis=2).reshape(c, 2 * nb)
    t = np.repeat(np.arange(nb) * f / fs, 2) + np.tile([0.0, (f - 1) / fs], nb)
    return t, y


def plot_timeline(path: Path, starts: np.ndarray, window_s: float, prob: np.ndarray, threshold: float,
                  events: Sequence[Sequence[float]], x: np.ndarray, fs: float, channels: Sequence[str],
                  title: str = "", units: str = "µV", cam: Optional[np.ndarray] = None) -> None:
    """Seizure probability per window (threshold line, shaded events) above offset traces of a few channels;
    `cam` (n_times,) in [0, 1] adds a Grad-CAM strip under them (`detect --explain`)."""
    upper = [c.upper() for c in channels]
    pick = [upper.index(c) for c in PLOT_CHANNELS if c in upper] or list(range(min(6, len(channels))))
    t, y = _envelope(np.asarray(x[pick], dtype=np.float32), fs, PLOT_MAX_POINTS)
    lo, hi = np.percentile(y, [0.5, 99.5], axis=1)
    spacing = float(np.median(hi - lo)) or 1.0
    duration = x.shape[1] / fs

    ratios = [1, 2] + ([0.25] if cam is not None else [])
    fig, axes = subplots(len(ratios), 1, figsize=(12, 6.5 + (0.8 if cam is not None else 0)), sharex=True,
                         gridspec_kw={"height_ratios": ratios})
    ax1, ax2 = axes[0], axes[1]
    centres = np.asarray(starts) + window_s / 2
    ax1.plot(centres, prob, "-o", ms=2.5, lw=1.2, color="tab:blue", label="seizure probability")
    ax1.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    for k, (s, e, *_) in enumerate(events):
        for ax in (ax1, ax2):
            ax.axvspan(s, e, color="tab:orange", alpha=0.25, lw=0, label="detected event" if (k == 0 and ax is ax1) else None)
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_ylabel("P(seizure)")
    ax1.grid(alpha=0.3)
    ax1.legend(loc="upper right", fontsize=8)
    ax1.set_title(title)
    for r in range(len(pick)):
        ax2.plot(t, y[r] - r * spacing, lw=0.4, color="k")
    ax2.set_yticks([-r * spacing for r in range(len(pick))])
    ax2.set_yticklabels([channels[i] for i in pick], fontsize=8)
    ax2.set_ylim(-(len(pick) - 0.2) * spacing, 0.8 * spacing)
    ax2.set_xlim(0, duration)
    if cam is not None:
        tc, yc = _envelope(np.asarray(cam, np.float32)[None], fs, PLOT_MAX_POINTS)
        axes[2].imshow(yc, aspect="auto", cmap="Reds", vmin=0, vmax=max(float(yc.max()), 1e-9), extent=(0, duration, 0, 1), interpolation="nearest")
        axes[2].set_yticks([])
        axes[2].set_ylabel("Grad-CAM", fontsize=8, rotation=0, ha="right", va="center")
        axes[2].set_xlabel("time (s)")
    else:
        ax2.set_xlabel("time (s)")
    ax2.text(1.0, 1.0, f"spacing {spacing:.0f} {units}", transform=ax2.transAxes, ha="right", va="bottom", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def _blend_members(outputs: Path, entry: str, members: dict[str, float], edf: Path,
                   progress: bool) -> tuple[RecordingCache, np.ndarray]:
    """(the recording's windows, blended seizure probability (N,)) of an experiment or ensemble (torch)."""
    memo: dict[str, RecordingCache] = {}
    wsum = sum(members.values())
    blend: Optional[np.ndarray] = None
    ref: Optional[RecordingCache] = None
    for member, w in members.items():
        cache, probs = predict_member(outputs / member, edf, memo, progress=progress)
        if ref is None:
            ref = cache
        elif len(cache.samples) != len(ref.samples) or not np.allclose(cache.samples["start_s"], ref.samples["start_s"]) \
                or float(cache.samples["duration_s"].iloc[0]) != float(ref.samples["duration_s"].iloc[0]):
            raise ValueError(f"ensemble {entry!r}: member {member!r} uses other windows than the first member; "
                             "members of a detection ensemble must share window_s and stride_s")
        seizure = probs[:, cache.classes.index(event_class(task_from_classes(cache.classes), member))]
        blend = (w / wsum) * seizure if blend is None else blend + (w / wsum) * seizure
    assert ref is not None and blend is not None
    return ref, blend


def predict_onnx(onnx: Path, edf: Path) -> tuple[RecordingCache, np.ndarray, dict[str, Any]]:
    """(the recording's windows, seizure probability (N,), export metadata) from an exported ONNX model."""
    # imported here: onnx, onnxruntime and its quantization tools cost every detect process ~2 CPU-s at start-up
    from hbac.inference.export import OnnxDetector

    det = OnnxDetector(Path(onnx))
    m = det.meta
    data = from_dict(DataConfig, m["data"], str(onnx))
    fs = float(m["fs"])
    x, names = read_preprocessed(edf, data, fs)
    if list(names) != list(m["channels"]):
        raise ValueError(f"{onnx}: exported for channels {m['channels']}, the montage gives {names}")
    cache = recording_cache(edf, x, fs, names, m["classes"], m["window_s"], m["stride_s"],
                            params={"eeg": m["data"]["eeg"]}, dataset=data.dataset)
    n = int(m["n_times"])
    rows = cache.samples["eeg_row"].to_numpy()
    windows = np.stack([cache.eeg[r : r + n].T for r in rows]).astype(np.float32)
    probs = det.predict(windows)
    return cache, probs[:, list(m["classes"]).index(event_class(task_from_classes(m["classes"]), str(onnx)))], m


def _resolve_post(post: dict[str, Any], threshold: Optional[float], source: Path) -> dict[str, Any]:
    """Stored post-processing with `threshold` overriding its threshold (checked)."""
    post = {**POST_DEFAULT, **{k: v for k, v in (post or {}).items() if k in POST_DEFAULT}}
    if threshold is None:
        log.info("post-processing %s (from %s)", post, source)
    elif not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    else:
        post["threshold"] = float(threshold)
    post["threshold"] = float(post["threshold"])
    post["smooth_windows"] = int(post["smooth_windows"])
    return post


def detect(
    edf: Path,
    outputs: Path = Path("outputs"),
    name: Optional[str] = None,
    out_dir: Optional[Path] = None,
    threshold: Optional[float] = None,
    progress: bool = True,
    onnx: Optional[Path] = None,
    explain: bool = False,
) -> dict[str, Any]:
    """Seizure detection on one EDF → windows.csv, events.csv, events.tsv, timeline.png, detect.json in `out_dir`.

    With `onnx` (an exported `model.onnx`) the windows are scored by onnxruntime from the export's
    metadata alone (no checkpoints, no torch model). `explain` adds a Grad-CAM strip of the seizure class
    under the timeline (the first member's first fold; not with `onnx`). Returns {"name", "members", "threshold",
    "postprocessing", "out_dir", "windows_csv", "events_csv", "events_tsv", "timeline_png",
    "summary_json", "events" [(start_s, end_s, peak_prob)], "n_windows", "duration_s", "fs"}.
    """
    configure_threads()
    edf = Path(edf)
    if not edf.is_file():
        raise FileNotFoundError(f"EDF file not found: {edf}")
    outputs = Path(outputs)
    if onnx is not None:
        ref, prob, meta = predict_onnx(Path(onnx), edf)
        entry, members = f"{meta['experiment']} (onnx)", {meta["experiment"]: 1.0}
        post = _resolve_post(meta.get("postprocessing") or {}, threshold, Path(onnx))
    else:
        entry, members = resolve_detector(outputs, name)
        post = _resolve_post(default_postprocessing(outputs / entry), threshold, outputs / entry / "scores.json")
        ref, prob = _blend_members(outputs, entry, members, edf, progress)
    out_dir = Path(out_dir) if out_dir is not None else outputs / "detect" / edf.stem
    prob = np.clip(prob, 0.0, 1.0)
    if explain and onnx is not None:
        log.warning("--explain needs the torch checkpoints; no Grad-CAM strip with --onnx")
    cam = explain_strip(outputs / next(iter(members)), ref, prob) if explain and onnx is None else None
    return _write_detection(edf, out_dir, entry, members, post, ref, prob, cam)


def _write_detection(edf: Path, out_dir: Path, entry: str, members: dict[str, float], post: dict[str, Any],
                     ref: RecordingCache, prob: np.ndarray, cam: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Events from window probabilities (N,) → the detection files; returns the result dict of `detect`."""
    starts = ref.samples["start_s"].to_numpy(np.float64)
    window_s = float(ref.samples["duration_s"].iloc[0])
    events = detect_events(prob, starts, window_s, **post)
    duration = len(ref.eeg) / ref.fs
    threshold = post["threshold"]
    wsum = sum(members.values())

    windows_csv, events_csv, events_tsv = out_dir / "windows.csv", out_dir / "events.csv", out_dir / "events.tsv"
    timeline_png, summary_json = out_dir / "timeline.png", out_dir / "detect.json"
    atomic_write_csv(windows_csv, pd.DataFrame({"start_s": starts, "end_s": starts + window_s, "seizure_prob": prob}))
    atomic_write_csv(events_csv, events_to_frame(events))
    write_events_tsv(events_tsv, events, duration, read_edf(edf).start)  # SzCORE format, scorable by its tools
    title = f"{edf.name}: {entry} ({'ensemble of ' + str(len(members)) if len(members) > 1 else 'experiment'}), " \
            f"{len(events)} event(s) at threshold {threshold:.2f}"
    plot_timeline(timeline_png, starts, window_s, prob, threshold, events, ref.eeg.T, ref.fs, ref.channels, title,
                  units="z" if ref.meta["params"].get("eeg", {}).get("standardize") else "µV", cam=cam)
    result: dict[str, Any] = {
        "edf": str(edf),
        "name": entry,
        "members": {k: v / wsum for k, v in members.items()},
        "threshold": float(threshold),
        "postprocessing": post,
        "out_dir": out_dir,
        "windows_csv": windows_csv,
        "events_csv": events_csv,
        "events_tsv": events_tsv,
        "timeline_png": timeline_png,
        "summary_json": summary_json,
        "events": events,
        "n_windows": len(starts),
        "window_s": window_s,
        "duration_s": float(duration),
        "fs": float(ref.fs),
    }
    atomic_write_json(summary_json, {k: (str(v) if isinstance(v, Path) else v) for k, v in result.items()}
                      | {"created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    log.info("%s: %d window(s) over %.0f s, %d event(s) at threshold %.2f → %s",
             edf.name, len(starts), duration, len(events), threshold, out_dir)
    for s, e, p in events:
        log.info("   seizure event %.1f–%.1f s (peak probability %.2f)", s, e, p)
    return result
