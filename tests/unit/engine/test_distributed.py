"""Distributed pieces that need no process group: torchrun's environment, rank shards of the samplers, and the
validation gather that puts the shards back in row order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hbac.data.samplers import (
    DistributedWeightedSampler,
    balanced_weights,
    distributed_sampler,
)
from hbac.engine.fold import assemble_shards
from hbac.engine.runtime import dist_env, is_main, wrap_ddp


def test_dist_env_reads_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(v, raising=False)
    env = dist_env()
    assert (env.rank, env.world_size, env.distributed) == (0, 1, False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    env = dist_env()
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size, env.distributed) == (1, 2, 1, 2, True)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        dist_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        dist_env()


def test_single_process_helpers_are_no_ops() -> None:
    import torch

    m = torch.nn.Linear(2, 2)
    assert is_main() and wrap_ddp(m, torch.device("cpu")) is m


def test_eval_shards_gather_back_in_row_order() -> None:
    """Two ranks' in-order shards of 7 rows (one padding duplicate) give every row its own prediction once."""
    n, world = 7, 2
    probs = np.arange(n * 3, dtype=np.float64).reshape(n, 3)  # row i's "prediction" identifies it
    shards = []
    for r in range(world):
        idx = np.fromiter(iter(distributed_sampler(n, world, r, train=False)), dtype=np.int64)
        shards.append((idx, probs[idx]))
    assert sum(len(i) for i, _ in shards) == 8  # padded to a multiple of the world size
    np.testing.assert_array_equal(assemble_shards(shards, n), probs)
    with pytest.raises(RuntimeError, match="1 of 7 rows"):
        assemble_shards([(i[i != 3], p[i != 3]) for i, p in shards], n)


def test_train_shards_split_one_permutation_per_epoch() -> None:
    n, world = 10, 2
    a = [list(distributed_sampler(n, world, r, train=True)) for r in range(world)]
    for s in a:
        assert len(s) == 5
    assert sorted(a[0] + a[1]) == list(range(n))  # disjoint and covering
    samplers = [distributed_sampler(n, world, r, train=True) for r in range(world)]
    for s in samplers:
        s.set_epoch(7)
    b = [list(s) for s in samplers]
    assert sorted(b[0] + b[1]) == list(range(n)) and b != a  # another epoch, another permutation


def test_balanced_shards_draw_classes_equally_and_deterministically() -> None:
    """The distributed balanced sampler: ranks share one draw per epoch (same seed → same draws), classes equal."""
    table = pd.DataFrame({"a_vote": [1.0] * 90 + [0.0] * 10, "b_vote": [0.0] * 90 + [1.0] * 10})
    y = table.to_numpy().argmax(axis=1)
    w = balanced_weights(table)
    drawn = []
    for epoch in range(20):
        shards = []
        for r in range(2):
            s = DistributedWeightedSampler(w, 2, r)
            s.set_epoch(epoch)
            shards.append(list(s))
            assert len(s) == 50 and list(s) == shards[-1]  # re-iterating an epoch repeats it (exact resume)
        drawn += shards[0] + shards[1]
    freq = np.bincount(y[np.array(drawn)], minlength=2) / len(drawn)
    np.testing.assert_allclose(freq, [0.5, 0.5], atol=0.03)
    with pytest.raises(ValueError, match="rank 2"):
        DistributedWeightedSampler(w, 2, 2)
