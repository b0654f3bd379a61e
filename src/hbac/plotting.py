"""Figures written to files: a bare matplotlib `Figure` (rendered by Agg when saved) and its atomic PNG write.

No pyplot and no `matplotlib.use`: a notebook that trains, explains or detects in-process keeps its backend
(inline plots), no figure stays in pyplot's list, and nothing needs closing. matplotlib is imported on the
first figure (about 0.6 s), so the modules that import this one (`engine.outputs`, read by `ensemble` and
`leaderboard`) stay light.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hbac.io import atomic_path


def figure(figsize: tuple[float, float]) -> Any:
    """A bare matplotlib Figure of `figsize` inches."""
    from matplotlib.figure import Figure  # local import: see the module docstring

    return Figure(figsize=figsize)


def subplots(*grid: int, figsize: tuple[float, float], **kw: Any) -> tuple[Any, Any]:
    """`pyplot.subplots` on a bare Figure: (figure, axes)."""
    fig = figure(figsize)
    return fig, fig.subplots(*grid, **kw)


def save_png(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as PNG atomically (temp file beside `path`, then renamed); returns `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
