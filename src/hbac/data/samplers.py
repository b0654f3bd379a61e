"""Samplers and DataLoader worker seeding."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import WeightedRandomSampler

from hbac.data.selection import vote_columns


def balanced_sampler(table: pd.DataFrame, generator: torch.Generator) -> WeightedRandomSampler:
    """Sampler drawing every class (argmax of the soft target) equally often."""
    y = table[vote_columns(table)].to_numpy().argmax(axis=1)
    counts = np.bincount(y, minlength=y.max() + 1).astype(np.float64)
    w = 1.0 / counts[y]
    return WeightedRandomSampler(torch.as_tensor(w, dtype=torch.double), num_samples=len(y), replacement=True, generator=generator)


def worker_init(worker_id: int) -> None:
    """Seed numpy in DataLoader workers from torch's per-worker seed (augmentations use numpy); one
    torch thread per worker (the workers only slice arrays; many threads each would thrash the cores)."""
    np.random.seed(torch.initial_seed() % 2**32)
    torch.set_num_threads(1)
