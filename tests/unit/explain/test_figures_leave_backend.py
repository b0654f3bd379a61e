"""Figures are drawn on bare matplotlib Figures: importing or calling `hbac.explain`, `hbac.report` or `detect`'s
timeline in a notebook leaves its backend (inline plots) alone, and nothing stays open in pyplot."""
from __future__ import annotations

import ast
from pathlib import Path

import matplotlib
import numpy as np

from conftest import REPO_ROOT
from hbac.inference.detect import plot_timeline
from hbac.plotting import save_png, subplots


def _backend_changes(path: Path) -> list[str]:
    """'file:line what' for each statement of a module that would switch or pin a process's matplotlib backend:
    `matplotlib.use(...)`, `pyplot.switch_backend(...)`, an import of pyplot (its global figure list and backend
    resolution), or setting MPLBACKEND."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        what = None
        if isinstance(node, ast.Import) and any(a.name == "matplotlib.pyplot" for a in node.names):
            what = "import matplotlib.pyplot"
        elif isinstance(node, ast.ImportFrom) and (node.module == "matplotlib.pyplot"
                                                    or (node.module == "matplotlib" and any(a.name == "pyplot" for a in node.names))):
            what = "from matplotlib import pyplot"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("use", "switch_backend"):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in ("matplotlib", "mpl", "plt", "pyplot"):
                what = f"{owner.id}.{node.func.attr}(...)"
        elif isinstance(node, ast.Constant) and node.value == "MPLBACKEND":
            what = "MPLBACKEND"
        if what:
            found.append(f"{path}:{node.lineno} {what}")
    return found


def test_no_module_switches_the_backend() -> None:
    """No module of the package switches matplotlib's backend or uses pyplot (every module, read as source: a fresh
    interpreter importing hbac.explain, hbac.report and detect to ask matplotlib cost 8 CPU-s and saw only those)."""
    files = sorted((REPO_ROOT / "src" / "hbac").rglob("*.py"))
    assert len(files) > 50
    found = [hit for f in files for hit in _backend_changes(f)]
    assert found == [], found


def test_the_backend_check_finds_each_form(tmp_path) -> None:
    src = tmp_path / "m.py"
    for code in ["import matplotlib\nmatplotlib.use('Agg')", "import matplotlib as mpl\nmpl.use('Agg')",
                 "import matplotlib.pyplot as plt", "from matplotlib import pyplot", "from matplotlib.pyplot import figure",
                 "import os\nos.environ['MPLBACKEND'] = 'Agg'"]:
        src.write_text(code + "\n")
        assert len(_backend_changes(src)) >= 1, code
    src.write_text("from matplotlib.figure import Figure\nfig = Figure()\nfig.subplots()\n")
    assert _backend_changes(src) == []


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
