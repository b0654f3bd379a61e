"""Runtime settings: device, mixed precision, cuDNN / memory-format choices, seeding, CPU threads, DataLoader
workers, and the distributed (torchrun) process group.

Distributed training: `torchrun --nproc_per_node=N -m hbac train CONFIG --fold K` starts N processes with
RANK / WORLD_SIZE / LOCAL_RANK set; `init_distributed` joins them (nccl on CUDA, gloo on the CPU) and the
helpers below (`is_main`, `barrier`, `broadcast_object`, `gather_objects`, `mean_across`) are no-ops in a
single process, so the engine calls them unconditionally. One node only: ranks share the output folder.
"""
from __future__ import annotations

import logging
import os
import random
from datetime import timedelta
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist

from hbac.procs import DistEnv, dist_env  # torch-free; dist_env re-exported here

log = logging.getLogger(__name__)

BF16_MIN_CAPABILITY = (8, 0)  # Ampere: native bf16 tensor cores; older GPUs (T4 7.5, P100 6.0) emulate it slowly


def init_distributed(timeout_s: float = 1800.0) -> DistEnv:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, one GPU per LOCAL_RANK; gloo on the CPU)."""
    env = dist_env()
    if not env.distributed or dist.is_initialized():
        return env
    if torch.cuda.is_available():
        if env.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {env.local_rank}: only {torch.cuda.device_count()} CUDA devices visible; "
                               f"use --nproc_per_node <= {torch.cuda.device_count()}")
        torch.cuda.set_device(env.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    log.info("distributed: rank %d of %d (local %d), backend %s", env.rank, env.world_size, env.local_rank, backend)
    return env


def close_distributed() -> None:
    """Leave the process group (after the last collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True in the process that writes files and logs (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (a picklable value); `obj` itself when not distributed."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank ([obj] when not distributed)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_across(x: float) -> float:
    """The mean of a float over the ranks (the float itself when not distributed)."""
    if not is_distributed():
        return x
    vals = gather_objects(float(x))
    return float(np.mean(vals))


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) into `model` on every rank: each rank's last training batches
    moved its own, so evaluation and the saved checkpoint would otherwise disagree."""
    if not is_distributed():
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel when distributed (gradients averaged over ranks), else `model` itself.

    Checkpoints are always saved from the unwrapped module (no `module.` prefix), so they load in one process.
    """
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def device_auto() -> torch.device:
    """cuda (cuda:LOCAL_RANK under torchrun) when a GPU is visible, else cpu."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    env = dist_env()
    return torch.device("cuda", env.local_rank) if env.distributed else torch.device("cuda")


def auto_devices() -> Optional[str]:
    """`train --gpus auto`: every visible CUDA device ('0,1,…', or the numbers CUDA_VISIBLE_DEVICES lists) when there
    are two or more, else None (the folds run one after the other in this process; also for UUIDs in CUDA_VISIBLE_DEVICES)."""
    n = torch.cuda.device_count()
    if n < 2:
        return None
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()][:n]
    if not visible:
        return ",".join(str(i) for i in range(n))
    if len(visible) == n and all(d.isdigit() for d in visible):
        return ",".join(visible)
    log.warning("--gpus auto: CUDA_VISIBLE_DEVICES=%s is not a list of device numbers; the folds run one after the "
                "other (give --gpus N,M to spread them)", os.environ["CUDA_VISIBLE_DEVICES"])
    return None


def native_bf16(device: torch.device) -> bool:
    """True when the GPU computes bf16 natively (compute capability >= 8.0).

    `torch.cuda.is_bf16_supported()` also says True where bf16 is only emulated (T4, P100).
    """
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return tuple(torch.cuda.get_device_capability(device)) >= BF16_MIN_CAPABILITY


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype for a config value ('auto', 'bf16', 'fp16', 'off'); None = fp32.

    auto: bf16 on compute capability >= 8.0, else fp16 (trained with a GradScaler); an explicit
    'bf16' on an older GPU falls back to fp16 with a warning.
    """
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if native_bf16(device):
        return torch.bfloat16
    if amp == "bf16":
        log.warning("train.amp bf16: GPU compute capability %s < 8.0 has no native bf16; using fp16 with a gradient scaler",
                    torch.cuda.get_device_capability(device))
    return torch.float16


def grad_scaler(dtype: Optional[torch.dtype]) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 autocast (bf16 and fp32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


def configure_backends(device: torch.device) -> None:
    """cuDNN autotuning on a GPU: input shapes are fixed per experiment, so the first-step search pays off."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def use_channels_last(device: torch.device) -> bool:
    """Whether 2D CNN inputs/weights should be NHWC: faster convolutions under AMP on tensor-core GPUs."""
    return device.type == "cuda"


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to `device`; on a GPU also NHWC weights (channels_last) and cuDNN autotuning."""
    configure_backends(device)
    model = model.to(device)
    if use_channels_last(device):
        model = model.to(memory_format=torch.channels_last)  # only 4D (conv2d) weights change layout
    return model


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads counted once; logical count as a fallback)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for c in cpus:
        try:
            pkg = open(f"/sys/devices/system/cpu/cpu{c}/topology/physical_package_id").read().strip()
            core = open(f"/sys/devices/system/cpu/cpu{c}/topology/core_id").read().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((pkg, core))
    return max(1, len(cores))


def resolve_threads(requested: Optional[int] = None, n_procs: int = 1) -> int:
    """torch CPU threads for this process: `requested` (config `train.threads`), else `HBAC_THREADS`,
    else `OMP_NUM_THREADS`, else the physical cores divided among the `n_procs` processes that run."""
    if requested is not None and requested > 0:
        return int(requested)
    for var in ("HBAC_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var, "").strip()
        if v:
            try:
                n = int(v)
            except ValueError:
                raise ValueError(f"environment variable {var}={v!r} is not a whole number of threads") from None
            if n > 0:
                return n
    return max(1, physical_cores() // max(1, n_procs))


def configure_threads(requested: Optional[int] = None, n_procs: int = 1) -> int:
    """Apply `resolve_threads` to torch once at start-up (two processes with all threads each run many
    times slower on a small machine than with their share); returns the thread count."""
    n = resolve_threads(requested, n_procs)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
        log.debug("torch CPU threads: %d", n)
    return n


def resolve_num_workers(cap: Optional[int], device: torch.device) -> int:
    """DataLoader worker processes: on a GPU run, the cores this process may use (capped by the
    config's `train.num_workers`); on a CPU run 0 unless the config asks, since loading in the main
    process leaves the cores to the model's threads. Each worker uses one torch thread."""
    if cap is not None and cap <= 0:
        return 0
    if device.type != "cuda":
        return 0 if cap is None else min(cap, max(0, physical_cores() - 1))
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    avail = max(1, avail // dist_env().local_world_size)  # torchrun: the node's cores shared among its ranks
    return min(cap if cap is not None else avail, avail)
