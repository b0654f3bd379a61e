"""DataLoaders and the batched inference loop (TTA: window offsets and the hemisphere flip)."""
from __future__ import annotations

import logging
import time
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hbac.config import ExperimentConfig
from hbac.data.augment import hemisphere_flip
from hbac.data.dataset import WindowDataset
from hbac.data.samplers import balanced_sampler, distributed_sampler, worker_init
from hbac.engine.runtime import (
    amp_dtype,
    device_auto,
    is_distributed,
    rank,
    resolve_num_workers,
    to_device,
    world_size,
)

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_loader(
    model: torch.nn.Module | Sequence[torch.nn.Module],
    loader: DataLoader,
    device: torch.device,
    amp: str = "auto",
    tta_flip: bool = False,
    progress: bool = True,
    desc: str = "predict",
    offsets_s: Sequence[float] = (0.0,),
    timings: Optional[dict[str, float]] = None,
) -> np.ndarray:
    """Softmax probabilities (N, K) float64 for every item of `loader` (in order).

    Several models (an experiment's folds): the mean of their probabilities, each batch read, collated
    and flipped once for all of them. Test-time augmentation: the mean over every window offset in
    `offsets_s` (seconds the EEG window is shifted from its centre, through the dataset's `set_view`)
    and, with `tta_flip`, over the original and hemisphere-flipped inputs (the dataset's `flip_perms`:
    its EEG montage and the extra inputs its adapter declares). `timings`: adds the seconds spent
    reading batches (`data`: items, collation, transfer, flip) and in the models (`forward`).
    """
    models = [model] if isinstance(model, torch.nn.Module) else list(model)
    for m in models:
        m.eval()
    offsets = [float(o) for o in offsets_s] or [0.0]
    ds = loader.dataset
    if any(o != 0.0 for o in offsets) and not hasattr(ds, "set_view"):
        raise ValueError(f"tta.offsets_s {offsets}: {type(ds).__name__} cannot shift its windows (no set_view)")
    perms = getattr(ds, "flip_perms", None)
    if tta_flip and perms is None:
        raise ValueError(f"tta.hemisphere_flip: {type(ds).__name__} declares no flip permutations (flip_perms)")
    total: Optional[np.ndarray] = None
    try:
        for off in offsets:
            if hasattr(ds, "set_view"):
                ds.set_view(off)
            label = desc if len(offsets) == 1 else f"{desc} offset {off:+g} s"
            p = _predict_pass(models, loader, device, amp, perms if tta_flip else None, progress, label, timings)
            total = p if total is None else total + p
    finally:
        if hasattr(ds, "set_view"):
            ds.set_view(0.0)
    assert total is not None
    return total / (len(offsets) * len(models))


def _predict_pass(
    models: list[torch.nn.Module], loader: DataLoader, device: torch.device, amp: str, flip: Optional[dict[str, np.ndarray]],
    progress: bool, desc: str, timings: Optional[dict[str, float]] = None,
) -> np.ndarray:
    """One pass over `loader`: (N, K) float64 sum over `models` of each one's probabilities, averaged over the
    hemisphere flip by `flip` (None: no flip)."""
    dt = amp_dtype(amp, device)
    out = []
    t = time.perf_counter()
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        batch = to_device({k: v for k, v in batch.items() if k not in ("target", "weight", "index")}, device)
        views = [batch, hemisphere_flip(batch, flip, axis=1)] if flip is not None else [batch]
        t = tick(timings, "data", t)
        total: Optional[np.ndarray] = None
        for model in models:
            probs = 0
            for v in views:
                with torch.autocast(device_type=device.type, dtype=dt or torch.float32, enabled=dt is not None):
                    logits = model(v)
                probs = probs + torch.softmax(logits.float(), dim=1)
            p = (probs / len(views)).cpu().numpy().astype(np.float64)
            total = p if total is None else total + p
        out.append(total)
        t = tick(timings, "forward", t)
    if not out:
        return np.zeros((0, 0))
    return np.concatenate(out)


def tick(timings: Optional[dict[str, float]], key: str, t0: float) -> float:
    """Add the seconds since `t0` to `timings[key]` (when timing); return now."""
    now = time.perf_counter()
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + now - t0
    return now


def make_loader(cfg: ExperimentConfig, ds: WindowDataset, train: bool, gen: Optional[torch.Generator] = None) -> DataLoader:
    """Training (shuffled or balanced) or evaluation loader; workers per `resolve_num_workers`.

    Under torchrun (`is_distributed`) each rank loads its shard (`data.samplers.distributed_sampler`): the
    training sampler must get `set_epoch` every epoch; an evaluation loader yields the rank's rows in
    `loader.sampler` order (padded), which `engine.fold` gathers back into the table's order.
    """
    workers = resolve_num_workers(cfg.train.num_workers, device_auto())
    sampler = None
    balanced = train and cfg.train.sampler == "balanced"
    if is_distributed():
        sampler = distributed_sampler(len(ds), world_size(), rank(), train, ds.table if balanced else None)
    elif balanced:
        sampler = balanced_sampler(ds.table, gen)
    n_items = len(sampler) if sampler is not None else len(ds)  # per rank
    return DataLoader(
        ds,
        batch_size=cfg.train.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train and n_items > cfg.train.batch_size,
        num_workers=workers,
        worker_init_fn=worker_init,
        generator=gen,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
