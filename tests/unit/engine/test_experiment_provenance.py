"""One config per experiment folder: train refuses to mix, submit/ensemble/leaderboard check it;
a failed train leaves no folder; ensemble folders are written as one unit; stale temp files are cleaned;
submit on a full disk is one line naming the file and writes nothing."""
from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_folder

import hbac.ensemble as E
from hbac.config import EnsembleConfig, load_config
from hbac.engine.experiment import train_experiment
from hbac.engine.provenance import experiment_hash, mixed_folds
from hbac.ensemble import load_member_oof, run_ensemble
from hbac.errors import DiskFullError, ExperimentMixError
from hbac.inference.submit import TMP_PREFIX, clean_stale_submit_temps, make_submission
from hbac.leaderboard import build_leaderboard, render

REPO = Path(__file__).resolve().parents[3]


def _cfg(data_dir: Path, root: Path, name: str):
    cfg = load_config(REPO / "configs" / "tiny" / "hms_features.yaml")
    cfg.data.data_dir, cfg.data.cache_root, cfg.output_root, cfg.name = str(data_dir), str(root / "cache"), str(root / "outputs"), name
    return cfg


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture(scope="session")
def two_runs(trained_hms_features, tmp_path_factory: pytest.TempPathFactory):
    """Experiment 'a' trained on all folds with one seed (shared, read only), and the same experiment with another seed
    under 'b', its fold 1 only (trained once per test run, also under pytest-xdist: `shared_folder`; read only)."""
    a = trained_hms_features

    def cfg_b(root: Path):
        b = _cfg(Path(a.data.data_dir), root, "b")
        b.data.cache_root = a.data.cache_root  # the prepared cache (read only)
        b.train.seed = 7
        return b

    root = shared_folder(tmp_path_factory, "provenance_b", lambda root: train_experiment(cfg_b(root), folds=[1], progress=False))
    return root, a, cfg_b(root)


def test_folds_and_scores_record_the_config_hash(two_runs) -> None:
    root, a, _ = two_runs
    h = experiment_hash(a)
    for k in range(a.folds.n_folds):
        assert json.loads((a.output_dir() / f"fold{k}" / "fold.json").read_text())["config_hash"] == h
    assert json.loads((a.output_dir() / "scores.json").read_text())["config_hash"] == h
    assert mixed_folds(a.output_dir()) is None
    # run-only settings do not change the hash; a training setting does
    a2 = load_config(a.output_dir() / "config.yaml")
    a2.data.workers, a2.data.allow_missing, a2.output_root = 3, True, "elsewhere"
    assert experiment_hash(a2) == h
    a2.train.lr *= 2
    assert experiment_hash(a2) != h


def test_changed_config_is_refused_then_overwrite_retrains(two_runs, synth_hms: Path, tmp_path: Path) -> None:
    root, a, _ = two_runs
    exp = tmp_path / "outputs" / "a"
    shutil.copytree(a.output_dir(), exp)
    c = _cfg(synth_hms, tmp_path, "a")
    c.data.cache_root = a.data.cache_root  # the prepared cache (read only)
    c.train.seed = 99
    before = (exp / "fold0" / "fold.json").read_text()
    with pytest.raises(ExperimentMixError, match=r"--overwrite.*") as e:
        train_experiment(c, folds=[0], progress=False)
    assert "train.seed" in str(e.value) and str(exp) in str(e.value)
    assert (exp / "fold0" / "fold.json").read_text() == before  # nothing touched
    train_experiment(c, folds=[0], progress=False, overwrite=True)
    assert json.loads((exp / "fold0" / "fold.json").read_text())["config_hash"] == experiment_hash(c)
    assert not (exp / "fold1").exists() and mixed_folds(exp) is None  # the old folds went with --overwrite


def _mixed(two_runs, tmp_path: Path) -> Path:
    """What a killed re-train used to leave: a's folder with fold1 from b's config."""
    root, a, b = two_runs
    outputs = tmp_path / "outputs"
    shutil.copytree(a.output_dir(), outputs / "a")
    shutil.rmtree(outputs / "a" / "fold1")
    shutil.copytree(b.output_dir() / "fold1", outputs / "a" / "fold1")
    return outputs


def test_mixed_experiment_is_refused_by_submit_ensemble_and_flagged_by_leaderboard(two_runs, synth_hms: Path, tmp_path: Path) -> None:
    outputs = _mixed(two_runs, tmp_path)
    with pytest.raises(ExperimentMixError, match=r"fold1"):
        make_submission(synth_hms, outputs, experiment="a", out=tmp_path / "sub.csv", progress=False)
    assert not (tmp_path / "sub.csv").exists()
    with pytest.raises(ExperimentMixError, match="another config"):
        load_member_oof(outputs, "a")
    lb = build_leaderboard(outputs)
    row = lb.set_index("name").loc["a"]
    assert "mixed configs" in row["note"] and not row["complete"]


def test_printed_leaderboard_marks_a_mixed_experiment(two_runs, tmp_path: Path) -> None:
    """The text and markdown tables a user reads mark the mixed folder (name*) and say why under the table."""
    outputs = _mixed(two_runs, tmp_path)
    lb = build_leaderboard(outputs)
    for fmt, mark in (("text", "* a: mixed configs"), ("markdown", "`*` a: mixed configs")):
        out = render(lb, fmt)
        assert mark in out and "fold1" in out.split(mark, 1)[1].splitlines()[0], out
        assert "a*" in out.split(mark, 1)[0], out


def test_train_failing_before_its_first_fold_leaves_no_folder(synth_hms: Path, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "no_such_data", tmp_path, "nothing")
    with pytest.raises((FileNotFoundError, ValueError)):
        train_experiment(cfg, progress=False)
    assert not cfg.output_dir().exists()
    assert build_leaderboard(tmp_path / "outputs").empty


def test_ensemble_folder_is_one_unit_and_stale_temps_go(two_runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, a, b = two_runs
    outputs = tmp_path / "outputs"
    shutil.copytree(a.output_dir(), outputs / "a")
    shutil.copytree(a.output_dir(), outputs / "a2")
    dead = _dead_pid()
    stale = outputs / f".ens.{dead}.x1y2.tmp"
    stale.mkdir(parents=True)
    cfg = EnsembleConfig(name="ens", members=["a", "a2"], output_root=str(outputs))
    run_ensemble(cfg)
    assert not stale.exists() and {p.name for p in (outputs / "ens").iterdir()} == {"config.yaml", "weights.json", "oof.csv", "scores.json"}
    before = {p.name: p.read_bytes() for p in (outputs / "ens").iterdir()}
    # killed between files (here: the OOF write fails): the old folder stays whole, no temp left behind
    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(E, "atomic_write_csv", boom)
    with pytest.raises(OSError, match="disk full"):
        run_ensemble(EnsembleConfig(name="ens", members=["a", "a2"], fit_on="min_votes", min_votes=1, output_root=str(outputs)))
    assert {p.name: p.read_bytes() for p in (outputs / "ens").iterdir()} == before
    assert not [p for p in outputs.iterdir() if p.name.startswith(".ens.")]


def test_submit_cleans_temp_files_of_killed_runs(tmp_path: Path) -> None:
    dead = _dead_pid()
    out = tmp_path / "submission.csv"
    beside = tmp_path / f".submission.csv.{dead}.abcd.tmp"
    beside.write_text("partial")
    live_beside = tmp_path / f".submission.csv.{os.getppid()}.abcd.tmp"
    live_beside.write_text("someone else's, still running")
    in_tmp = Path(tempfile.gettempdir()) / f"{TMP_PREFIX}{dead}_zz"
    in_tmp.mkdir(exist_ok=True)
    (in_tmp / "eeg.npy").write_bytes(b"x" * 10)
    removed = clean_stale_submit_temps(out)
    assert beside in removed and in_tmp in removed
    assert not beside.exists() and not in_tmp.exists() and live_beside.exists()


def test_submit_on_a_full_disk_names_the_file_and_writes_nothing(two_runs, synth_hms: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing submission.csv fails with EFBIG (a file over the size limit): a DiskFullError naming it, no partial file."""
    root, a, _ = two_runs
    out = tmp_path / "sub.csv"
    real_to_csv = pd.DataFrame.to_csv

    def to_csv(self, path=None, *args, **kwargs):
        if path is not None and Path(path).name.startswith(f".{out.name}."):  # the atomic temp beside sub.csv
            raise OSError(errno.EFBIG, "File too large")
        return real_to_csv(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    with pytest.raises(DiskFullError, match=rf"while writing {out}"):
        make_submission(synth_hms, Path(a.output_root), experiment=a.name, out=out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_submit_py_under_a_file_size_limit_is_one_line(two_runs, synth_hms: Path, tmp_path: Path) -> None:
    """`python submit.py` whose test cache cannot be written (RLIMIT_FSIZE, as on a full disk): exit 2, one
    `error:` line naming the path, no traceback, no submission, no temp folder left."""
    root, a, _ = two_runs
    out = tmp_path / "sub.csv"

    def limit() -> None:  # runs in the child
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, str(REPO / "submit.py"), "--data-dir", str(synth_hms), "--outputs", str(a.output_root),
                          "--experiment", a.name, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, preexec_fn=limit)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 2, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "too large while writing " in errors[0] and TMP_PREFIX in errors[0], err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert not list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{p.pid}_*"))
