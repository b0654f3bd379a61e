"""DataLoaders and the batched inference loop (with hemisphere-flip TTA)."""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hbac.config import ExperimentConfig
from hbac.data.dataset import WindowDataset
from hbac.data.samplers import balanced_sampler, worker_init
from hbac.engine.runtime import amp_dtype, device_auto, resolve_num_workers, to_device
from hbac.models import hemisphere_flip

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_loader(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    channels: list[str],
    amp: str = "auto",
    tta_flip: bool = False,
    progress: bool = True,
    desc: str = "predict",
) -> np.ndarray:
    """Softmax probabilities (N, K) float64 for every item of `loader` (in order).

    With `tta_flip` the prediction is the mean of the original and hemisphere-flipped inputs.
    """

    model.eval()
    dt = amp_dtype(amp, device)
    out = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        batch = to_device({k: v for k, v in batch.items() if k not in ("target", "weight", "index")}, device)
        views = [batch, hemisphere_flip(batch, channels)] if tta_flip else [batch]
        probs = 0
        for v in views:
            with torch.autocast(device_type=device.type, dtype=dt or torch.float32, enabled=dt is not None):
                logits = model(v)
            probs = probs + torch.softmax(logits.float(), dim=1)
        out.append((probs / len(views)).cpu().numpy().astype(np.float64))
    if not out:
        return np.zeros((0, 0))
    return np.concatenate(out)


def make_loader(cfg: ExperimentConfig, ds: WindowDataset, train: bool, gen: Optional[torch.Generator] = None) -> DataLoader:
    """Training (shuffled or balanced) or evaluation loader; workers per `resolve_num_workers`."""
    workers = resolve_num_workers(cfg.train.num_workers, device_auto())
    sampler = None
    if train and cfg.train.sampler == "balanced":
        sampler = balanced_sampler(ds.table, gen)
    return DataLoader(
        ds,
        batch_size=cfg.train.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train and len(ds) > cfg.train.batch_size,
        num_workers=workers,
        worker_init_fn=worker_init,
        generator=gen,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
