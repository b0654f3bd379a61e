"""Samplers (shuffled, class-balanced, and their distributed shards) and DataLoader worker seeding.

Under torchrun every rank draws the same epoch permutation (or the same balanced draws) from a seed set by
`set_epoch`, then keeps every `world_size`-th index from its rank; the list is padded to a multiple of the
world size by repeating its start, so every rank runs the same number of batches.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DistributedSampler, Sampler, WeightedRandomSampler

from hbac.data.selection import vote_columns


def balanced_weights(table: pd.DataFrame) -> np.ndarray:
    """(N,) float64 draw weights that give every class (argmax of the soft target) the same total weight."""
    y = table[vote_columns(table)].to_numpy().argmax(axis=1)
    counts = np.bincount(y, minlength=y.max() + 1).astype(np.float64)
    return 1.0 / counts[y]


def balanced_sampler(table: pd.DataFrame, generator: torch.Generator) -> WeightedRandomSampler:
    """Sampler drawing every class (argmax of the soft target) equally often."""
    w = balanced_weights(table)
    return WeightedRandomSampler(torch.as_tensor(w, dtype=torch.double), num_samples=len(w), replacement=True, generator=generator)


class DistributedWeightedSampler(Sampler[int]):
    """One rank's share of `len(weights)` draws with replacement (`weights`: (N,) float ≥ 0), the draws the
    same on every rank for a given `set_epoch` value: ceil(N / world_size) indices per rank."""

    def __init__(self, weights: np.ndarray, num_replicas: int, rank: int, seed: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside world size {num_replicas}")
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.num_samples = math.ceil(len(self.weights) / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, self.num_samples * self.num_replicas, replacement=True, generator=g)
        return iter(draws[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


def distributed_sampler(n: int, num_replicas: int, rank: int, train: bool, table: Optional[pd.DataFrame] = None) -> Sampler[int]:
    """The rank's sampler over `n` items: balanced draws when `table` is given (training with `sampler: balanced`),
    else a shuffled (training) or in-order (evaluation) DistributedSampler; call `set_epoch` before each epoch."""
    if table is not None:
        return DistributedWeightedSampler(balanced_weights(table), num_replicas, rank)
    return DistributedSampler(range(n), num_replicas=num_replicas, rank=rank, shuffle=train, drop_last=False)


def worker_init(worker_id: int) -> None:
    """Seed numpy in DataLoader workers from torch's per-worker seed (augmentations use numpy); one
    torch thread per worker (the workers only slice arrays; many threads each would thrash the cores)."""
    np.random.seed(torch.initial_seed() % 2**32)
    torch.set_num_threads(1)
