"""Helpers shared by the demos."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def tiny_configs_dir() -> Path:
    """The shipped tiny configs (`configs/tiny/` of the repository)."""
    d = REPO_ROOT / "configs" / "tiny"
    if not d.exists():
        raise FileNotFoundError(f"tiny configs not found at {d}: run the demo from a clone of the repository (pip install -e .)")
    return d


def banner(msg: str) -> None:
    print(f"\n=== {msg}", flush=True)
