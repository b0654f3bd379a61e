"""Atomic file writes: write to a temp file in the same folder, then rename."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from hbac.errors import DiskFullError

LOW_SPACE_BYTES = 64 << 20  # a write error with less free space than this is reported as a full disk


def is_disk_full(e: BaseException, path: str | Path) -> bool:
    """True when `e` is running out of room on `path`'s disk: ENOSPC, EDQUOT, or EFBIG (the file outgrew
    the file system's or the process's size limit, `ulimit -f`).

    torch.save reports ENOSPC as a RuntimeError ("file write failed", "unexpected pos …"), so a
    RuntimeError counts too when the disk holding `path` has under LOW_SPACE_BYTES free.
    """
    if isinstance(e, DiskFullError):
        return False  # already reported
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if isinstance(e, RuntimeError):
        try:
            return shutil.disk_usage(Path(path).parent).free < LOW_SPACE_BYTES
        except OSError:
            return False
    return False


def disk_full_error(e: BaseException, path: str | Path) -> DiskFullError:
    """The one-line error for a full disk (or a file over the size limit) while writing `path`."""
    what = "file too large" if isinstance(e, OSError) and e.errno == errno.EFBIG else "disk full"
    return DiskFullError(f"{what} while writing {path} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it over `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp_path, path)
    except (OSError, RuntimeError) as e:
        if is_disk_full(e, path):
            raise disk_full_error(e, path) from e
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def atomic_write_csv(path: str | Path, df: pd.DataFrame, **kwargs: Any) -> None:
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a folder under a temp name; on success replace `path` with it, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        if is_disk_full(e, tmp):
            raise disk_full_error(e, path) from e
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (signal 0 probes without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_STALE = re.compile(r"^(?:(?P<pid>\d+)\..*\.tmp|old\.(?P<oldpid>\d+))$")  # after the `.<name>.` prefix


def clean_stale_temps(path: str | Path) -> list[Path]:
    """Remove temp files/folders beside `path` left by killed writers (`.<name>.<pid>.*.tmp`, `.<name>.old.<pid>`)
    whose process is gone; a live writer's are kept. Returns what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}."
    for p in path.parent.iterdir():
        m = _STALE.match(p.name[len(prefix):]) if p.name.startswith(prefix) else None
        if not m:
            continue
        pid = int(m.group("pid") or m.group("oldpid"))
        if pid == os.getpid() or pid_alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _json_default(o: Any) -> Any:

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)
