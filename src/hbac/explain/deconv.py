"""Reverse convolution: deconvolution and guided-backprop maps (captum) of the strongest first- and last-layer filters.

For a batch of windows, the filter of a layer with the largest mean |activation| is the
'strongest'; captum's `NeuronDeconvolution` / `NeuronGuidedBackprop` then project that
filter's summed activation back to the input. 2D models that expose `forward_image` are
attributed on their input image (what the filters see); others on their raw inputs.

Note: both methods only change the backward pass of `nn.ReLU` modules; through SiLU/GELU
activations (the 1D models here) they reduce to the plain input gradient of the filter.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from captum.attr import NeuronDeconvolution, NeuronGuidedBackprop

from hbac.explain.common import (
    TensorModel,
    conv_layers,
    grad_mode,
    input_keys,
    minmax,
)
from hbac.explain.draw import chain_groups
from hbac.explain.gradcam import image_module, model_image, target_layers
from hbac.plotting import subplots

log = logging.getLogger(__name__)

METHODS = {"deconvolution": NeuronDeconvolution, "guided_backprop": NeuronGuidedBackprop}


class ImageModel(nn.Module):
    """A 2D model's backbone image → logits: forward(img (B, in_chans, H, W)) → (B, K)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.model.forward_image(img)


@dataclass
class FilterMap:
    """One filter's reverse map: layer name, filter index, mean activation, method, map over the attributed input."""

    layer: str
    filt: int
    activation: float
    method: str
    space: str  # "eeg" ((B, C, T) maps) or "image" ((B, H, W) maps)
    maps: np.ndarray


def first_last_convs(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module): per dimensionality, the first trainable convolution and the Grad-CAM target layer (the last one)."""
    names = {id(m): n for n, m in model.named_modules()}
    last = target_layers(model)
    out: list[tuple[str, nn.Module]] = []
    for kind, cls in (("1d", nn.Conv1d), ("2d", nn.Conv2d)):
        convs = conv_layers(model, cls)
        if convs:
            out.append(convs[0])
            if kind in last and last[kind] is not convs[0][1]:
                out.append((names.get(id(last[kind]), kind), last[kind]))
    if not out:
        raise ValueError(f"{type(model).__name__}: no convolution layer to reverse")
    return out


def _attr_setup(model: nn.Module, batch: dict[str, torch.Tensor], layer: nn.Module) -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], str]:
    """(module of tensors, attributed inputs, extra forward args, space): the image of the 2D (branch) whose backbone
    holds the layer, else the raw EEG (other inputs passed along unattributed)."""
    m2d = image_module(model)
    backbone = getattr(m2d, "backbone", None)
    if m2d is not None and callable(getattr(m2d, "forward_image", None)) and backbone is not None \
            and any(layer is mod for mod in backbone.modules()):
        with torch.no_grad():
            img = model_image(m2d, batch).float()
        return ImageModel(m2d), (img,), (), "image"
    keys = ["eeg"] + [k for k in input_keys(model) if k != "eeg"]
    return TensorModel(model, keys), (batch["eeg"].float(),), tuple(batch[k].float() for k in keys[1:]), "eeg"


def strongest_filters(model: nn.Module, batch: dict[str, torch.Tensor], layer: nn.Module, n: int = 1) -> tuple[list[int], np.ndarray]:
    """Indices of the `n` filters of `layer` with the largest mean |activation| over the batch, and every filter's mean."""
    acts: list[torch.Tensor] = []
    h = layer.register_forward_hook(lambda _m, _i, o: acts.append(o.detach()))
    try:
        with torch.no_grad():
            model.eval()
            model(batch)
    finally:
        h.remove()
    a = acts[0].abs().float()
    mean = a.mean(dim=[d for d in range(a.dim()) if d != 1]).cpu().numpy()
    return [int(i) for i in np.argsort(-mean)[:n]], mean


def filter_maps(model: nn.Module, batch: dict[str, torch.Tensor], layer: nn.Module, filt: int, method: str) -> tuple[np.ndarray, str]:
    """|Reverse map| of filter `filt`'s summed activation: ((B, C, T) on the EEG or (B, H, W) on the image, space)."""
    if method not in METHODS:
        raise ValueError(f"unknown reverse method {method!r} ({', '.join(METHODS)})")
    fm, xs, extra, space = _attr_setup(model, batch, layer)
    with torch.no_grad():
        acts: list[torch.Tensor] = []
        h = layer.register_forward_hook(lambda _m, _i, o: acts.append(o))
        try:
            fm(*xs, *extra)
        finally:
            h.remove()
    selector = (filt,) + (slice(None),) * (acts[0].dim() - 2)  # the whole feature map of one filter, summed
    with grad_mode(model):
        attr = METHODS[method](fm, layer).attribute(xs[0], neuron_selector=selector, additional_forward_args=extra or None)
    a = attr[0] if isinstance(attr, tuple) else attr
    a = a.detach().abs().float().cpu().numpy()
    if a.shape[0] != xs[0].shape[0]:
        raise ValueError(f"reverse map batch {a.shape[0]} differs from the input's {xs[0].shape[0]}")
    if space == "image":
        a = a.sum(axis=1)  # the in_chans copies of the grey image
    return a, space


def reverse_maps(model: nn.Module, batch: dict[str, torch.Tensor], n_filters: int = 1,
                 methods: Sequence[str] = ("deconvolution", "guided_backprop")) -> list[FilterMap]:
    """Maps of the strongest filters of the first and last convolutions, for both methods."""
    out = []
    for name, layer in first_last_convs(model):
        idx, mean = strongest_filters(model, batch, layer, n_filters)
        for f in idx:
            for meth in methods:
                try:
                    maps, space = filter_maps(model, batch, layer, f, meth)
                except RuntimeError as e:  # the layer does not depend on the attributed input (e.g. a Kaggle-only branch)
                    log.warning("%s filter %d: no %s map (%s)", name, f, meth, str(e).splitlines()[0])
                    continue
                out.append(FilterMap(name, f, float(mean[f]), meth, space, maps))
    return out


def plot_filter_maps(fmaps: Sequence[FilterMap], i: int, channels: Sequence[str], fs: float,
                     image: Optional[np.ndarray] = None, title: str = "") -> Any:
    """One row per filter map for sample `i`: per-chain |map| over time (EEG) or the image map, side by side for the methods."""
    fig, axes = subplots(len(fmaps), 1, figsize=(12, 2.2 * len(fmaps) + 0.8), squeeze=False)
    groups = chain_groups(channels)
    for ax, fmp in zip(axes[:, 0], fmaps):
        m = fmp.maps[i]
        if fmp.space == "eeg":
            g = np.stack([m[ii].sum(axis=0) for _, ii in groups])
            k = max(1, int(fs // 4))
            g = np.stack([np.convolve(r, np.ones(k) / k, mode="same") for r in g])
            ax.imshow(minmax(g), aspect="auto", cmap="viridis", extent=(0, m.shape[-1] / fs, len(groups) - 0.5, -0.5), interpolation="nearest")
            ax.set_yticks(range(len(groups)))
            ax.set_yticklabels([n for n, _ in groups], fontsize=7)
            ax.set_xlabel("time in window (s)", fontsize=7)
        else:
            if image is not None:
                ax.imshow(image, cmap="gray", aspect="auto")
            ax.imshow(minmax(m), cmap="viridis", alpha=0.6 if image is not None else 1.0, aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(f"{fmp.method}: {fmp.layer} filter {fmp.filt} (mean |activation| {fmp.activation:.3g})", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
