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
from typing import Any, Iterator, Optional

import numpy as np
import pandas as pd

from hbac.errors import DataError, DiskFullError

try:
    import resource  # Unix only: the file size limit (ulimit -f) behind EFBIG
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

LOW_SPACE_BYTES = 64 << 20  # a write error with less free space than this is reported as a full disk


def write_failure(e: BaseException, path: str | Path) -> Optional[str]:
    """'disk full' or 'file too large' when `e`, raised while writing `path`, means there was no room; else None.

    ENOSPC/EDQUOT: the disk (or quota) is full. EFBIG: the file outgrew the file system's or the
    process's size limit (`ulimit -f`). torch.save reports both as a RuntimeError ("file write failed",
    "unexpected pos …"): it counts as a full disk when the disk holding `path` has under
    LOW_SPACE_BYTES free, and as too large when `path` has reached the process's file size limit.
    """
    if isinstance(e, DiskFullError):
        return None  # already reported
    if isinstance(e, OSError):
        return {errno.ENOSPC: "disk full", errno.EDQUOT: "disk full", errno.EFBIG: "file too large"}.get(e.errno or 0)
    if isinstance(e, RuntimeError):
        if _at_size_limit(path):
            return "file too large"
        try:
            return "disk full" if shutil.disk_usage(Path(path).parent).free < LOW_SPACE_BYTES else None
        except OSError:
            return None
    return None


def _at_size_limit(path: str | Path) -> bool:
    """Whether file `path` has grown to this process's file size limit (RLIMIT_FSIZE), where writes stop."""
    if resource is None:
        return False
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    try:
        return soft != resource.RLIM_INFINITY and Path(path).is_file() and Path(path).stat().st_size >= soft
    except OSError:
        return False


def is_disk_full(e: BaseException, path: str | Path) -> bool:
    """True when `e`, raised while writing `path`, means the disk (or the file size limit) left no room."""
    return write_failure(e, path) is not None


def disk_full_error(e: BaseException, path: str | Path, written: Optional[str | Path] = None) -> DiskFullError:
    """The one-line error for a full disk (or a file over the size limit) while writing `path` (through temp file `written`)."""
    what = write_failure(e, written or path) or "disk full"
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
        if is_disk_full(e, tmp_path):
            raise disk_full_error(e, path, tmp_path) from e
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
    """Parsed JSON of `path`; a file that is not valid JSON is a DataError naming it."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
