"""Grad-CAM with captum: over time for 1D models (and per montage chain), over the spectrogram image for 2D models.

Target layers: a model may declare them (`model.cam_layers()` → {"1d": module, "2d": module});
otherwise the last trainable `nn.Conv1d` / `nn.Conv2d` of the model is used, so a new model kind
gets Grad-CAM without changes here. A multimodal model gets both maps.

2D maps are upsampled to the backbone's input image and cut back into its tiles
(`image_layout`): Kaggle regions LL/RL/LP/RP × 100 frequencies × 10 minutes, EEG-spectrogram
chains × frequency × the EEG window, so a map reads as region × frequency × time.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import GuidedGradCam, LayerGradCam
from matplotlib.patches import Rectangle

from hbac.datasets.kaggle_spec import SPEC_FREQS
from hbac.explain.common import (
    TensorModel,
    conv_layers,
    grad_mode,
    input_keys,
    minmax,
)
from hbac.explain.draw import chain_groups, draw_eeg
from hbac.plotting import figure, subplots
from hbac.signals.montage import SPEC_REGIONS

log = logging.getLogger(__name__)

Target = int | Sequence[int] | torch.Tensor


def target_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{"1d": layer, "2d": layer} to attribute: the model's declared `cam_layers()`, else its last Conv1d / Conv2d."""
    declared = getattr(model, "cam_layers", None)
    if declared is not None:
        layers = dict(declared() if callable(declared) else declared)
        if layers:
            return layers
    out: dict[str, nn.Module] = {}
    for kind, cls in (("2d", nn.Conv2d), ("1d", nn.Conv1d)):
        convs = conv_layers(model, cls)
        if convs:
            out[kind] = convs[-1][1]
    if not out:
        raise ValueError(f"{type(model).__name__}: no Conv1d/Conv2d layer and no cam_layers(); Grad-CAM needs a convolutional model")
    return out


def _inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[TensorModel, tuple[torch.Tensor, ...]]:
    keys = input_keys(model)
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(f"model input {missing[0]!r} missing from batch (keys: {sorted(batch)})")
    return TensorModel(model, keys), tuple(batch[k].float() for k in keys)


def layer_cam(model: nn.Module, batch: dict[str, torch.Tensor], target: Target, layer: nn.Module) -> torch.Tensor:
    """Raw Grad-CAM of `layer` (ReLU of the gradient-weighted channel sum): (B, 1, T') or (B, 1, h, w)."""
    tm, xs = _inputs(model, batch)
    with grad_mode(model):
        cam = LayerGradCam(tm, layer).attribute(xs, target=_target(target, xs[0]), relu_attributions=True)
    cam = cam.detach().float()
    b = xs[0].shape[0]
    if cam.shape[0] != b and cam.shape[0] % b == 0:  # the layer sees each channel as its own row (e.g. WaveNet): mean over them
        cam = cam.reshape(b, cam.shape[0] // b, *cam.shape[1:]).mean(dim=1)
    return cam


def _target(target: Target, x: torch.Tensor) -> Any:
    if isinstance(target, int):
        return target
    return torch.as_tensor(target, dtype=torch.long, device=x.device)


def cam_1d(model: nn.Module, batch: dict[str, torch.Tensor], target: Target, layer: Optional[nn.Module] = None) -> np.ndarray:
    """Grad-CAM over time at the EEG's resolution: (B, T) in [0, 1] per sample (T = batch['eeg'] samples)."""
    layer = layer if layer is not None else target_layers(model)["1d"]
    cam = layer_cam(model, batch, target, layer)
    if cam.dim() != 3:
        raise ValueError(f"1D Grad-CAM needs a (B, C, T) layer output, got {tuple(cam.shape)}")
    n = batch["eeg"].shape[-1]
    up = F.interpolate(cam, size=n, mode="linear", align_corners=False)[:, 0]
    return minmax(up.cpu().numpy(), axis=1)


def chain_cam(model: nn.Module, batch: dict[str, torch.Tensor], target: Target, channels: Sequence[str],
              fs: float, layer: Optional[nn.Module] = None, smooth_s: float = 1.0) -> tuple[list[str], np.ndarray]:
    """Guided Grad-CAM on the raw EEG summed per montage chain: (chain names, (B, G, T) in [0, 1]), `smooth_s` moving mean."""
    layer = layer if layer is not None else target_layers(model)["1d"]
    tm, xs = _inputs(model, batch)
    with grad_mode(model):
        attr = GuidedGradCam(tm, layer).attribute(xs, target=_target(target, xs[0]))
    attr = attr if isinstance(attr, tuple) else (attr,)
    a = attr[input_keys(model).index("eeg")].detach().abs().float()  # (B, C, T)
    groups = chain_groups(channels)
    g = torch.stack([a[:, ii].sum(dim=1) for _, ii in groups], dim=1)  # (B, G, T)
    k = max(1, int(round(smooth_s * fs)))
    g = F.avg_pool1d(F.pad(g, (k // 2, k - 1 - k // 2), mode="replicate"), k, stride=1)
    return [n for n, _ in groups], minmax(g.cpu().numpy(), axis=(1, 2))


# --------------------------------------------------------------------------- 2D


@dataclass
class Tile:
    """One tile of a 2D model's input image: rows r0:r1, columns c0:c1; frequency per row (Hz, low first) and time span (s from the EEG window start)."""

    name: str
    source: str  # "kaggle_spec", "eeg_spec" or "image"
    r0: int
    r1: int
    c0: int
    c1: int
    freqs: Optional[np.ndarray]
    t0: float
    t1: float


def image_module(model: nn.Module) -> Optional[nn.Module]:
    """The (sub)module that builds the 2D image (`image(batch)`), if any: the model or e.g. a multimodal's branch."""
    for m in model.modules():
        if callable(getattr(m, "image", None)):
            return m
    return None


def model_image(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The backbone image (B, in_chans, H, W) exactly as forward builds it: after the model's `input_stage`, if any."""
    stage = getattr(m, "input_stage", None)
    return m.image(stage(batch) if callable(stage) else batch)


def _mel_centres(fmin: float, fmax: float, n: int) -> np.ndarray:
    m = np.linspace(2595 * math.log10(1 + fmin / 700), 2595 * math.log10(1 + fmax / 700), n + 2)[1:-1]
    return 700 * (10 ** (m / 2595) - 1)


def _eeg_freqs(spec: Any, rows: int) -> Optional[np.ndarray]:
    """Frequency (Hz) of each image row of an EEG transform (`EEGSpectrogram`, `MorletCWT`) after its resize to `rows` rows."""
    freqs = getattr(spec, "freqs", None)
    if isinstance(freqs, torch.Tensor) and freqs.dim() == 1:  # e.g. the CWT's wavelet frequencies, low first
        f = freqs.detach().cpu().numpy().astype(np.float64)
        return np.interp((np.arange(rows) + 0.5) * len(f) / rows - 0.5, np.arange(len(f)), f)
    fmin, fmax = getattr(spec, "fmin", None), getattr(spec, "fmax", None)
    if fmin is None or fmax is None:
        return None
    if getattr(spec, "kind", "stft") == "mel":
        n_mels = getattr(spec, "fbank").shape[1]
        c = _mel_centres(fmin, fmax, n_mels)
        return np.interp((np.arange(rows) + 0.5) * n_mels / rows - 0.5, np.arange(n_mels), c)
    return np.linspace(fmin, fmax, rows)


def _part_tiles(m: nn.Module, name: str, batch: dict[str, torch.Tensor], duration_s: float) -> tuple[tuple[int, int], list[Tile]]:
    """((h, w), tiles in the part's own pixels) of one input image of a Spec2D-like model."""
    if name == "kaggle_spec":
        h, w = m.kaggle_image(batch["kaggle_spec"]).shape[-2:]
        half = 300.0  # the Kaggle window: 10 minutes centred on the EEG window
        return (h, w), [Tile(n, name, (i // 2) * h // 2, (i // 2 + 1) * h // 2, (i % 2) * w // 2, (i % 2 + 1) * w // 2,
                             np.asarray(SPEC_FREQS), duration_s / 2 - half, duration_s / 2 + half) for i, n in enumerate(SPEC_REGIONS)]
    if name in ("eeg_spec", "eeg_cwt"):
        tf = getattr(m, "spec" if name == "eeg_spec" else "cwt", None)
        h, w = m.eeg_image(batch["eeg"], tf).shape[-2:]
        if getattr(m, "chain_idx", None) is not None:
            names, ncol = list(SPEC_REGIONS), 2
        else:
            names, ncol = list(getattr(m, "channels", [])), int(getattr(m, "grid_cols", 1))
        nrow = max(1, math.ceil(len(names) / ncol))
        th = h // nrow
        freqs = _eeg_freqs(tf, th)
        return (h, w), [Tile(n, name, (i // ncol) * th, (i // ncol + 1) * th, (i % ncol) * w // ncol, (i % ncol + 1) * w // ncol,
                             freqs, 0.0, duration_s) for i, n in enumerate(names)]
    h, w = m.raw2d_image(batch["eeg"]).shape[-2:]  # eeg_raw2d: segments of the raw signal stacked; no frequency axis
    return (h, w), [Tile("raw", name, 0, h, 0, w, None, 0.0, duration_s)]


def image_layout(model: nn.Module, batch: dict[str, torch.Tensor], duration_s: float) -> tuple[torch.Tensor, list[Tile]]:
    """(backbone image (B, H, W), its tiles in image pixels) for a 2D model, following its image(): the Kaggle image,
    then each EEG image, resized to the last one's width, stacked, then resized to `image_size`; unknown builders give one tile."""
    m = image_module(model)
    if m is None:
        raise ValueError(f"{type(model).__name__}: no image(batch) method; 2D Grad-CAM cannot place its map")
    with torch.no_grad():
        batch = m.input_stage(batch) if callable(getattr(m, "input_stage", None)) else batch
        img = m.image(batch)[:, 0].float()
        h, w = img.shape[-2:]
        inputs = list(getattr(m, "inputs", []))
        known = ("kaggle_spec", "eeg_spec", "eeg_cwt", "eeg_raw2d")
        if not inputs or any(i not in known for i in inputs):
            return img, [Tile("image", "image", 0, h, 0, w, None, 0.0, duration_s)]
        order = (["kaggle_spec"] if "kaggle_spec" in inputs else []) + [i for i in inputs if i != "kaggle_spec"]
        parts = [_part_tiles(m, name, batch, duration_s) for name in order]
    width = parts[-1][0][1]
    total_h = sum(ph for (ph, _), _ in parts)
    sy, sx = h / total_h, w / width
    tiles, r = [], 0
    for (ph, pw), ts in parts:
        fx = width / pw  # each part is resized to the last part's width before stacking
        for t in ts:
            tiles.append(Tile(t.name, t.source, round((r + t.r0) * sy), round((r + t.r1) * sy), round(t.c0 * fx * sx),
                              round(t.c1 * fx * sx), t.freqs, t.t0, t.t1))
        r += ph
    return img, tiles


def cam_2d(model: nn.Module, batch: dict[str, torch.Tensor], target: Target, duration_s: float,
           layer: Optional[nn.Module] = None) -> tuple[np.ndarray, np.ndarray, list[Tile]]:
    """Grad-CAM over the 2D image: (image (B, H, W), map (B, H, W) in [0, 1] per sample, tiles)."""
    layer = layer if layer is not None else target_layers(model)["2d"]
    cam = layer_cam(model, batch, target, layer)
    if cam.dim() != 4:
        raise ValueError(f"2D Grad-CAM needs a (B, C, h, w) layer output, got {tuple(cam.shape)}")
    img, tiles = image_layout(model, batch, duration_s)
    up = F.interpolate(cam, size=tuple(img.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    return img.cpu().numpy(), minmax(up.cpu().numpy(), axis=(1, 2)), tiles


def region_maps(cam: np.ndarray, tiles: Sequence[Tile]) -> dict[str, np.ndarray]:
    """Cut a (H, W) or (B, H, W) map into its tiles: {source/name: (…, rows = frequency, cols = time)}."""
    return {f"{t.source}/{t.name}": cam[..., t.r0 : t.r1, t.c0 : t.c1] for t in tiles}


def eeg_time_profile(cam: np.ndarray, tiles: Sequence[Tile], n_times: int) -> Optional[np.ndarray]:
    """Mean of the map over frequency and over the EEG-spectrogram tiles (or the one 'image' tile), resampled to (…, n_times)."""
    parts = [cam[..., t.r0 : t.r1, t.c0 : t.c1].mean(axis=-2) for t in tiles if t.source in ("eeg_spec", "eeg_cwt", "image")]
    if not parts:
        return None
    width = min(p.shape[-1] for p in parts)
    prof = np.mean([p[..., :width] for p in parts], axis=0)
    x_old = (np.arange(width) + 0.5) / width
    x_new = (np.arange(n_times) + 0.5) / n_times
    return np.apply_along_axis(lambda v: np.interp(x_new, x_old, v), -1, prof)


def time_cam(model: nn.Module, batch: dict[str, torch.Tensor], target: Target, duration_s: float) -> tuple[Optional[np.ndarray], Any]:
    """(Grad-CAM over the EEG's time (B, T): the 1D layer's, else the 2D map's EEG-time profile; the 2D (image, map, tiles) or None)."""
    layers = target_layers(model)
    two = cam_2d(model, batch, target, duration_s, layers["2d"]) if "2d" in layers else None
    if "1d" in layers:
        return cam_1d(model, batch, target, layers["1d"]), two
    prof = eeg_time_profile(two[1], two[2], batch["eeg"].shape[-1]) if two is not None else None
    return prof, two


def stitch(cams: np.ndarray, starts: np.ndarray, weights: np.ndarray, n_total: int) -> np.ndarray:
    """Per-window maps (N, T) placed at sample offsets `starts` (N,) → (n_total,) weighted mean over overlapping windows."""
    acc = np.zeros(n_total)
    cnt = np.zeros(n_total)
    t = cams.shape[1]
    for c, s, w in zip(cams, starts.astype(np.int64), weights):
        e = min(n_total, s + t)
        acc[s:e] += w * c[: e - s]
        cnt[s:e] += 1
    return np.divide(acc, cnt, out=np.zeros(n_total), where=cnt > 0)


# --------------------------------------------------------------------------- figures


def plot_cam_1d(eeg: np.ndarray, fs: float, channels: Sequence[str], cam: np.ndarray,
                chains: Optional[tuple[list[str], np.ndarray]] = None, title: str = "") -> Any:
    """EEG (C, T) with the Grad-CAM (T,) shaded, the per-chain guided Grad-CAM (G, T) below, and the curve."""
    n_rows = 3 if chains is not None else 2
    fig, axes = subplots(n_rows, 1, figsize=(13, 9), sharex=True,
                             gridspec_kw={"height_ratios": [4, 1.2, 0.8][:n_rows]} if n_rows == 3 else {"height_ratios": [4, 0.8]})
    draw_eeg(axes[0], eeg, fs, channels, cam=cam)
    t = np.arange(eeg.shape[1]) / fs
    if chains is not None:
        names, g = chains
        axes[1].imshow(g, aspect="auto", cmap="Reds", vmin=0, vmax=1, extent=(t[0], t[-1], len(names) - 0.5, -0.5), interpolation="nearest")
        axes[1].set_yticks(range(len(names)))
        axes[1].set_yticklabels(names, fontsize=7)
        axes[1].set_title("guided Grad-CAM per chain (|attribution|, 1 s mean)", fontsize=8)
    axes[-1].plot(t, cam, color="tab:red", lw=1)
    axes[-1].set_ylim(0, 1.05)
    axes[-1].set_ylabel("CAM", fontsize=8)
    axes[-1].set_xlabel("time in window (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_cam_2d(img: np.ndarray, cam: np.ndarray, tiles: Sequence[Tile], title: str = "") -> Any:
    """The model's input image (H, W) with the map overlaid, tile names, and per-tile time and frequency profiles."""
    fig = figure(figsize=(13, 9))
    gs = fig.add_gridspec(2, 2, height_ratios=[3, 1.3], hspace=0.3)
    ax = fig.add_subplot(gs[0, :])
    ax.imshow(img, cmap="gray", aspect="auto", origin="upper")
    ax.imshow(cam, cmap="jet", alpha=0.4, aspect="auto", origin="upper", vmin=0, vmax=1)
    for t in tiles:
        ax.add_patch(Rectangle((t.c0 - 0.5, t.r0 - 0.5), t.c1 - t.c0, t.r1 - t.r0, fill=False, ec="w", lw=0.8))
        ax.text(t.c0 + 2, t.r0 + 2, f"{t.name} ({t.source})", color="w", fontsize=7, va="top")
    note = "" if cam.max() > 0 else " — zero everywhere: no positive evidence for this class"
    ax.set_title("Grad-CAM over the model's input image (within each tile: frequency rises downward, time to the right)" + note, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax_t, ax_f = fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1])
    for t in tiles:
        m = cam[t.r0 : t.r1, t.c0 : t.c1]
        ax_t.plot(np.linspace(t.t0, t.t1, m.shape[1]), m.mean(axis=0), lw=1, label=f"{t.source}/{t.name}")
        if t.freqs is not None:
            ax_f.plot(t.freqs[: m.shape[0]] if len(t.freqs) == m.shape[0] else np.interp(np.linspace(0, 1, m.shape[0]), np.linspace(0, 1, len(t.freqs)), t.freqs),
                      m.mean(axis=1), lw=1, label=f"{t.source}/{t.name}")
    ax_t.set_xlabel("time from the EEG window start (s)")
    ax_t.set_ylabel("mean CAM")
    ax_f.set_xlabel("frequency (Hz)")
    ax_t.legend(fontsize=6, ncol=2)
    for a in (ax_t, ax_f):
        a.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return fig
