"""Augmentations, one copy each for the data path (numpy, one item) and the batched/GPU path (torch, in the
model or the trainer): the hemisphere flip, time/frequency spectrogram masks, mixup.

Light on purpose (numpy, torch, `signals.montage`): `hbac.models` imports it for the in-model masks.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, TypeVar

import numpy as np
import torch

from hbac.signals.montage import flip_permutation

if TYPE_CHECKING:  # annotations only: importing the dataset registry here would make models pull it in
    from hbac.datasets import ExtraInput

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def flip_perms(channels: Sequence[str], extras: Iterable[ExtraInput] = ()) -> dict[str, np.ndarray]:
    """Hemisphere-flip permutation of each model input's channel axis: `eeg` from its montage names
    (`signals.montage.flip_permutation`), every extra input from its adapter's declaration (`ExtraInput.flip`)."""
    perms = {"eeg": flip_permutation(list(channels))}
    perms.update({e.name: np.asarray(e.flip, dtype=np.int64) for e in extras if e.flip is not None})
    return perms


def hemisphere_flip(arrays: Mapping[str, Any], perms: Mapping[str, np.ndarray], axis: int = 0,
                    mask: Optional[Any] = None) -> dict[str, Any]:
    """Mirror left ↔ right: every array named in `perms` permuted along its channel `axis`.

    axis 0: one item (`eeg` (C, T), `kaggle_spec` (4, F, S)…, numpy or torch; the Dataset's
    augmentation); axis 1: a batch (B, C, …) (TTA on the model's device). `mask` (B,) bool flips
    only those samples of a batch. Returns a new dict; other keys pass through; its own inverse.
    """
    out = dict(arrays)
    for key, perm in perms.items():
        x = arrays.get(key)
        if x is None:
            continue
        if x.shape[axis] != len(perm):
            raise ValueError(f"hemisphere_flip: {key!r} has {x.shape[axis]} channels on axis {axis}, expected {len(perm)}")
        if isinstance(x, torch.Tensor):
            flipped = x.index_select(axis, torch.as_tensor(perm, device=x.device, dtype=torch.long))
            if mask is not None:
                m = torch.as_tensor(mask, device=x.device, dtype=torch.bool).reshape(-1, *([1] * (x.dim() - 1)))
                flipped = torch.where(m, flipped, x)
        else:
            flipped = np.take(x, perm, axis=axis)
            if mask is not None:
                flipped = np.where(np.asarray(mask, bool).reshape(-1, *([1] * (x.ndim - 1))), flipped, x)
        out[key] = flipped
    return out


def span_mask(x: ArrayT, prob: float, axis: int, fill: float, *, max_frac: float = 0.1, batched: bool = False,
              rng: Optional[np.random.Generator] = None) -> ArrayT:
    """With probability `prob` per sample, set one random band of `axis` to `fill` (the same band on every other axis).

    x: numpy or torch (on any device); one item (`batched=False`, e.g. (R, F, T)) or a batch (`batched=True`,
    (B, ..., F, T): one draw per sample). The band is 1 … ⌊max_frac·n⌋ + 1 wide, n = x.shape[axis]. Draws: 3
    uniforms per sample (width, start, apply) from `rng`, so a numpy and a torch input mask the same band for
    the same generator state; rng None: the global state the trainer reseeds every epoch (numpy's for an
    array, torch's on the tensor's device for a tensor).
    prob 0 returns `x` itself and draws nothing; otherwise a new array/tensor of x's dtype.
    """
    if prob <= 0:
        return x
    ndim = x.ndim
    ax = axis % ndim
    if batched and ax == 0:
        raise ValueError("span_mask: axis 0 is the batch axis")
    n, b = int(x.shape[ax]), int(x.shape[0]) if batched else 1
    shape = [1] * ndim
    shape[ax] = n
    if batched:
        shape[0] = b
    if isinstance(x, torch.Tensor):
        if rng is None:  # torch's global generator on x's device: no host round trip on a GPU
            u = torch.stack([torch.rand(b, device=x.device) for _ in range(3)], dim=1)
        else:
            u = torch.from_numpy(rng.random((b, 3))).to(x.device)
        return x.masked_fill(_band(u, n, prob, max_frac, torch.arange(n, device=x.device)).reshape(shape), fill)
    u = rng.random((b, 3)) if rng is not None else np.random.random((b, 3))
    band = _band(u, n, prob, max_frac, np.arange(n))
    out = np.array(x, copy=True)
    if not batched:  # one item (the DataLoader's hot path): its band is one slice of `axis`, no masked pass over the array
        pos = np.flatnonzero(band[0])
        if pos.size:
            index: list[Any] = [slice(None)] * ndim
            index[ax] = slice(int(pos[0]), int(pos[-1]) + 1)
            np.copyto(out[tuple(index)], fill, casting="unsafe")
        return out
    np.copyto(out, fill, where=band.reshape(shape), casting="unsafe")
    return out


def _band(u: Any, n: int, prob: float, max_frac: float, pos: Any) -> Any:
    """(b, 3) uniforms (width, start, apply) → (b, n) bool band, numpy or torch alike (u's library and dtype)."""
    floor = torch.floor if isinstance(u, torch.Tensor) else np.floor
    width = (floor(u[:, 0] * (max_frac * n)) + 1).clip(max=n)
    start = floor(u[:, 1] * (n - width + 1))
    return (pos >= start[:, None]) & (pos < (start + width)[:, None]) & (u[:, 2:] < prob)


def mask_spec(x: ArrayT, time_prob: float, freq_prob: float, fill: float, *, max_frac: float = 0.1,
              batched: bool = False, rng: Optional[np.random.Generator] = None) -> ArrayT:
    """SpecAugment: one time band (last axis), then one frequency band (second last) set to `fill` (`span_mask`).

    The data path masks the raw Kaggle spectrogram item (R, F, T) with fill NaN ("no data": the model's
    `normalise_kaggle_spec` leaves it out of the image statistics and sets it to 0, the image mean); the
    2D model masks its own normalised EEG spectrogram batch (B, C, F, T) with fill 0.
    """
    x = span_mask(x, time_prob, -1, fill, max_frac=max_frac, batched=batched, rng=rng)
    return span_mask(x, freq_prob, -2, fill, max_frac=max_frac, batched=batched, rng=rng)


def mixup(batch: dict[str, torch.Tensor], alpha: float, generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """Mix every tensor input and the soft targets of a batch with a shuffled copy of itself."""
    lam = float(np.random.beta(alpha, alpha))
    perm = torch.randperm(batch["target"].shape[0], generator=generator)
    out = dict(batch)
    for k, v in batch.items():  # eeg, every extra input (e.g. kaggle_spec) and the target
        if k not in ("weight", "index") and torch.is_floating_point(v):
            out[k] = lam * v + (1 - lam) * v[perm]
    out["weight"] = lam * batch["weight"] + (1 - lam) * batch["weight"][perm]
    return out
