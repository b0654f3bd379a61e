"""Process hygiene: worker processes that die with their parent, SIGTERM handled like Ctrl-C."""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Iterator, Optional

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> bool:
    """In a child process: have Linux send `sig` to it when its parent dies (prctl PR_SET_PDEATHSIG).

    Exits at once if the parent is already gone (it died before the call). Returns False where
    prctl is not available (not Linux): the parent-watch thread of `watch_parent` still applies.
    """
    ok = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
        except (OSError, AttributeError) as e:  # no libc symbol: fall back to the watch thread
            log.debug("prctl unavailable: %s", e)
    if os.getppid() != parent_pid:
        os._exit(1)
    return ok


def watch_parent(parent_pid: int, interval_s: float = 1.0) -> threading.Thread:
    """A daemon thread that ends this process when its parent is gone (portable backstop to prctl)."""

    def run() -> None:
        while not stop.wait(interval_s):
            if os.getppid() != parent_pid:
                os._exit(1)

    stop = threading.Event()
    t = threading.Thread(target=run, name="parent-watch", daemon=True)
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
