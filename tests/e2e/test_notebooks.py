"""The Kaggle notebooks run end to end (nbclient) on tiny synthetic data laid out as /kaggle/input/… under a temp root."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO_ROOT
from test_demo_submit import check_submission

from hbac.datasets.synthetic import write_chbmit
from hbac.kaggle import bundle

NOTEBOOKS = REPO_ROOT / "notebooks"
TINY = "train.epochs=1 train.max_steps_per_epoch=2 folds.n_folds=2"


def _execute(name: str, cwd: Path) -> float:
    """Run notebooks/<name>.ipynb in a fresh kernel → seconds taken; a failing cell fails the test."""
    # nbclient/nbformat (0.25 s) and jupytext (0.2 s) are imported where they are used, not at the top: every
    # pytest-xdist worker collects this file, and only the one that runs these tests needs them
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return time.perf_counter() - t0


@pytest.mark.parametrize("name", ["hms_train", "hms_submit", "chbmit"])
def test_notebook_pairs_are_in_sync(name: str) -> None:
    import jupytext  # here: see `_execute`

    py = jupytext.read(NOTEBOOKS / f"{name}.py")
    ipynb = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    assert [c.source for c in py.cells] == [c.source for c in ipynb.cells], f"run: jupytext --sync notebooks/{name}.py"


@pytest.fixture
def kaggle_root(tmp_path: Path, monkeypatch) -> Path:
    """<tmp>/kaggle/input/{competition, hbac-bundle/configs}, the notebooks' environment pointing at it."""
    root = tmp_path / "kaggle"
    (root / "working").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "configs", root / "input" / "hbac-bundle" / "configs")
    monkeypatch.setenv("HBAC_KAGGLE_ROOT", str(root))
    monkeypatch.setenv("HBAC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT / "src"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return root


def test_hms_notebooks_train_bundle_submit(kaggle_root: Path, synth_hms: Path, synth_hms_cache: Path, monkeypatch,
                                           capsys) -> None:
    # the competition folder: the shared synthetic set, linked (read only here: the outputs go elsewhere); its shared
    # cache (the same hash: the data folder resolves to the same files), so the notebook's `train` reuses it instead of
    # preparing again (the CHB-MIT notebook below prepares its own, inside `train`)
    data = kaggle_root / "input" / "hms-harmful-brain-activity-classification"
    data.symlink_to(synth_hms, target_is_directory=True)
    monkeypatch.setenv("HBAC_CACHE", str(synth_hms_cache))
    monkeypatch.setenv("HBAC_CONFIG", "tiny/hms_1d.yaml")
    monkeypatch.setenv("HBAC_SETS", TINY + " train.stage2.enabled=false")
    t_train = _execute("hms_train", kaggle_root / "working")
    outputs = kaggle_root / "working" / "outputs"
    assert sorted(p.parent.name for p in (outputs / "tiny_hms_1d").glob("fold*/best.pt")) == ["fold0", "fold1"]
    assert (outputs / "tiny_hms_1d" / "scores.json").exists()
    epochs = [ln for ln in (outputs / "tiny_hms_1d" / "train.log").read_text().splitlines() if "stage1 epoch 1/1" in ln]
    assert len(epochs) == 2 and all("train loss" in ln and "lr " in ln and "ETA " in ln for ln in epochs), epochs
    weights = {p: p.stat().st_mtime_ns for p in (outputs / "tiny_hms_1d").glob("fold*/*.pt")}
    t_resume = _execute("hms_train", kaggle_root / "working")  # a restarted session: every fold complete, nothing retrained
    assert {p: p.stat().st_mtime_ns for p in weights} == weights, "the restarted notebook retrained a complete fold"

    bundle(outputs, ["tiny_hms_1d"], kaggle_root / "input" / "hbac-bundle", dataset_id="me/hbac-bundle", deps=False)
    monkeypatch.setenv("HBAC_ENSEMBLE", "")
    t_submit = _execute("hms_submit", kaggle_root / "working")
    check_submission(pd.read_csv(kaggle_root / "working" / "submission.csv"), data)
    with capsys.disabled():
        print(f"\nnotebook execution: hms_train {t_train:.0f} s (resumed: {t_resume:.0f} s), hms_submit {t_submit:.0f} s")


def test_chbmit_notebook_trains_and_detects(kaggle_root: Path, monkeypatch, capsys) -> None:
    write_chbmit(kaggle_root / "input" / "chb-mit-scalp-eeg-database", n_patients=2, seed=0, n_files=2, file_s=240.0)
    monkeypatch.setenv("HBAC_CONFIG", "tiny/chbmit_1d.yaml")
    monkeypatch.setenv("HBAC_SETS", TINY)
    t = _execute("chbmit", kaggle_root / "working")
    det = list((kaggle_root / "working" / "detect").iterdir())
    assert len(det) == 1 and any(p.suffix == ".csv" for p in det[0].iterdir())
    with capsys.disabled():
        print(f"\nnotebook execution: chbmit {t:.0f} s")
