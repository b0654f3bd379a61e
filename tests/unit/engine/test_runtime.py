"""Runtime settings: thread count precedence, DataLoader workers, one thread per loader worker, `--gpus auto`."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from hbac.data.samplers import worker_init
from hbac.engine.runtime import auto_devices, configure_threads, physical_cores, resolve_num_workers, resolve_threads


def test_thread_precedence(monkeypatch):
    monkeypatch.delenv("HBAC_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads() == physical_cores()
    assert resolve_threads(n_procs=physical_cores() * 4) == 1  # never below one thread
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads() == 3
    monkeypatch.setenv("HBAC_THREADS", "5")
    assert resolve_threads() == 5  # HBAC_THREADS wins over OMP_NUM_THREADS
    assert resolve_threads(2) == 2  # the config value wins over both
    monkeypatch.setenv("HBAC_THREADS", "many")
    try:
        resolve_threads()
    except ValueError as e:
        assert "HBAC_THREADS" in str(e)
    else:
        raise AssertionError("a non-integer HBAC_THREADS must be an error naming it")


def test_configure_threads_sets_torch():
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_num_workers_default_and_cap():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_num_workers(None, cpu) == 0  # CPU run: the main process loads, the model gets the cores
    assert resolve_num_workers(0, gpu) == 0
    assert 1 <= resolve_num_workers(None, gpu)
    assert resolve_num_workers(1, gpu) == 1  # the config value caps
    assert resolve_num_workers(10_000, cpu) < 10_000  # never more workers than cores


class _Threads(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return torch.get_num_threads()


def test_loader_workers_use_one_thread():
    loader = DataLoader(_Threads(), batch_size=1, num_workers=1, worker_init_fn=worker_init)
    assert [int(b) for b in loader] == [1, 1]


def test_gpus_auto_fans_out_over_two_or_more_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for n, want in ((0, None), (1, None), (2, "0,1"), (3, "0,1,2")):
        monkeypatch.setattr(torch.cuda, "device_count", lambda n=n: n)
        assert auto_devices() == want, n
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the visible devices' own numbers, for the children's CUDA_VISIBLE_DEVICES
    assert auto_devices() == "2,3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa,GPU-bb")  # UUIDs: no numbers to hand the children, no fan-out
    assert auto_devices() is None
