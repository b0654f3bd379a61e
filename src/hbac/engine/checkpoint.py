"""Checkpoint files: `save_checkpoint` (atomic `torch.save`) and `load_checkpoint` (`torch.load(weights_only=True)`).

Apart from `engine.outputs` (OOF tables, fold files, scores) so that what reads only OOF and scores
(`ensemble`, `leaderboard`, `score`) never imports torch.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from hbac.errors import CheckpointError
from hbac.io import atomic_path


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """Write `obj` with `torch.save` to a temp file beside `path`, then rename it into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `torch.load(weights_only=True)`: tensors and plain types only, never code.

    A missing file is a FileNotFoundError naming it; a file holding other pickled objects (a crafted
    `__reduce__` payload, or a checkpoint from another program) or a corrupt one is a CheckpointError
    naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused a global: never run it
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a trusted checkpoint: it holds objects other than tensors and plain values ({first[:200]})") from None
    except FileNotFoundError:
        raise
    except Exception as e:  # weights_only's unpickler meets garbage with assorted errors (IndexError, KeyError, struct.error …)
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt?): {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a trusted checkpoint: expected a dict, found {type(obj).__name__}")
    return obj
