"""One build of a cache at a time: an exclusive `flock` on `<cache_root>/.<name>.lock`.

The lock file sits beside the cache folder (never inside it: the folder is replaced by a
rename). A second `prepare` of the same cache waits for the first to finish and then reuses
its result; `timeout_s` turns the wait into a clear `CacheError`. The kernel releases the lock
when its holder dies (kill -9 included), so a stale lock file never blocks anyone.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Iterator, Optional

from hbac.errors import CacheError

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often a waiting build retries the lock
NOTE_EVERY_S = 30.0  # how often a waiting build says it is still waiting


def lock_path(cache_dir: Path) -> Path:
    """`<cache_root>/.<name>.lock` for cache folder `<cache_root>/<name>`."""
    return cache_dir.parent / f".{cache_dir.name}.lock"


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "another process"
    return f"process {text}" if text else "another process"


@contextlib.contextmanager
def cache_lock(cache_dir: Path, timeout_s: Optional[float] = None) -> Iterator[Path]:
    """Hold the build lock of `cache_dir` inside the block; waits for another holder (`timeout_s`: give up)."""
    path = lock_path(cache_dir)
    if path.parent.exists() and not path.parent.is_dir():  # else mkdir's bare "[Errno 17] File exists"
        raise CacheError(f"cache_root {path.parent} is a file, not a folder: point cache_root at a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        t0 = last_note = time.monotonic()
        noted = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise CacheError(f"{path}: cannot lock the cache for building: {e}") from e
            now = time.monotonic()
            if timeout_s is not None and now - t0 >= timeout_s:
                raise CacheError(
                    f"cache {cache_dir} is being built by {_holder(path)} (lock {path}); "
                    f"gave up after {timeout_s:g} s: wait for it to finish, then run again"
                )
            if not noted or now - last_note >= NOTE_EVERY_S:
                log.warning("cache %s is being built by %s (lock %s): waiting for it to finish", cache_dir, _holder(path), path)
                noted, last_note = True, now
            time.sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock
