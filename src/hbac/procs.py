"""Process hygiene: worker processes that die with their parent, SIGTERM handled like Ctrl-C, one BLAS thread where
processes share the cores, and this process's place in a torchrun job (`dist_env`; torch-free)."""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Iterator, Optional

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_ENV = "HBAC_POOL_PARENT_PID"  # set by a process before it starts a forkserver pool


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """In a child process: have Linux send `sig` to it when its parent dies (prctl PR_SET_PDEATHSIG).

    Returns False where prctl is not available (not Linux); `watch_process` still applies there.
    With a forkserver pool the parent is the server, which exits when its own parent does.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError) as e:  # no libc symbol: the watch thread remains
        log.debug("prctl unavailable: %s", e)
        return False


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_process(pid: int, interval_s: float = 0.5) -> threading.Thread:
    """A daemon thread that ends this process (exit 1) once process `pid` or this process's parent is gone.

    Exits at once when `pid` is already gone. A portable backstop to `die_with_parent`.
    """
    ppid = os.getppid()
    if not _exists(pid):
        os._exit(1)

    def run() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != ppid or not _exists(pid):
                os._exit(1)

    t = threading.Thread(target=run, name=f"watch-{pid}", daemon=True)
    t.start()
    return t


class Terminated(KeyboardInterrupt):
    """SIGTERM received: unwinds like Ctrl-C so that temp folders, locks and workers are cleaned up."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block (main thread only), SIGTERM raises `Terminated` instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        raise Terminated(f"terminated by signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread inside the block (threadpoolctl), the previous limits restored after it.

    For numpy work that runs in several processes or threads at once (prepare's workers, the synthetic
    generators' pool): small matmuls gain nothing from a multi-threaded BLAS, and its threads compete with
    the other workers for the cores (measured ~40x slower per-recording matmuls in prepare; the synthetic HMS
    set of 60 EEGs took 11.9 s instead of 8.2 s on 2 cores). A forked child inherits the limit."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a torchrun job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_env() -> DistEnv:
    """RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE as torchrun sets them; a bad value is a ValueError naming it."""
    vals = {}
    for var, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0), ("LOCAL_WORLD_SIZE", None)):
        v = os.environ.get(var, "").strip()
        try:
            vals[var] = int(v) if v else default
        except ValueError:
            raise ValueError(f"environment variable {var}={v!r} is not a whole number (set by torchrun)") from None
    world = max(1, vals["WORLD_SIZE"])
    env = DistEnv(vals["RANK"], world, vals["LOCAL_RANK"], vals["LOCAL_WORLD_SIZE"] or world)
    if not 0 <= env.rank < world:
        raise ValueError(f"environment variable RANK={env.rank} is outside WORLD_SIZE={world}")
    return env
