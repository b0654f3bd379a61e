"""Figures are drawn on bare matplotlib Figures: importing or calling `hbac.explain`, `hbac.report` or `detect`'s
timeline in a notebook leaves its backend (inline plots) alone, and nothing stays open in pyplot."""
from __future__ import annotations

import os
import subprocess
import sys

import matplotlib
import numpy as np

from conftest import REPO_ROOT
from hbac.plotting import save_png, subplots
from hbac.inference.detect import plot_timeline


def test_importing_explain_and_report_keeps_the_backend() -> None:
    code = ("import matplotlib; matplotlib.use('svg'); import hbac.explain.run, hbac.report, hbac.inference.detect; "
            "print(matplotlib.get_backend())")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "svg"


def test_drawing_keeps_the_backend_and_leaves_no_figure_open(tmp_path) -> None:
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # stands in for a notebook's inline backend
    try:
        fig, ax = subplots(figsize=(4, 3))
        ax.plot([0, 1], [1, 0])
        save_png(fig, tmp_path / "a.png")
        x = np.random.default_rng(0).normal(size=(4, 2000)).astype(np.float32)
        plot_timeline(tmp_path / "t.png", np.arange(0.0, 8.0, 2.0), 2.0, np.array([0.1, 0.9, 0.8, 0.2]), 0.5, [(2.0, 6.0)],
                      x, 200.0, ["FP1-F7", "F7-T7", "T7-P7", "P7-O1"], title="rec")
        assert matplotlib.get_backend() == "svg"
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
        for f in ("a.png", "t.png"):
            assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        matplotlib.use(before)
