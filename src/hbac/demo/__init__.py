"""`python -m hbac demo`: the whole pipeline on synthetic data."""
from __future__ import annotations

from pathlib import Path

from hbac.demo.chbmit import run_demo_chbmit
from hbac.demo.hms import run_demo_hms

__all__ = ["run_demo", "run_demo_chbmit", "run_demo_hms"]


def run_demo(workdir: Path, dataset: str = "hms", tiny: bool = False, progress: bool = True) -> dict[str, Path]:
    """The demo of `dataset` ('hms' or 'chbmit') in `workdir`; returns the paths of its main outputs."""
    if dataset == "chbmit":
        return run_demo_chbmit(workdir, tiny=tiny, progress=progress)
    return run_demo_hms(workdir, tiny=tiny, progress=progress)
