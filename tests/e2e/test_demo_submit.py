"""The demo end to end (tiny sizes), and submit.py on its models: real test example, corrupt EEG, missing weights."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SYNTH_HMS_EEGS, shared_folder

from hbac.cli import submit_main
from hbac.datasets.hms import HMS_VOTE_COLS
from hbac.errors import DataError
from hbac.inference.submit import make_submission


def check_submission(sub: pd.DataFrame, data_dir: Path) -> None:
    """Columns of sample_submission.csv, one row per test eeg_id in test.csv order, rows sum to 1."""
    test = pd.read_csv(data_dir / "test.csv")
    cols = list(pd.read_csv(data_dir / "sample_submission.csv", nrows=0).columns)
    assert list(sub.columns) == cols
    assert sub["eeg_id"].tolist() == test["eeg_id"].tolist()
    p = sub[HMS_VOTE_COLS].to_numpy()
    assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


@pytest.fixture(scope="session")
def demo(synth_hms: Path, tmp_path_factory) -> Path:
    """`run_demo(tiny=True)`'s work folder, run once per test run (also across xdist workers). Read only.

    The tiny demo writes the same synthetic set as `synth_hms` (24 EEGs, seed 0, 4 test EEGs: its banner is
    checked), so that set is linked into its folder first and the demo reuses it as on a second run (about 8
    CPU-s less). It prepares its own cache, in its work folder, as a user's first run does."""
    from hbac.demo import run_demo

    def build(wd: Path) -> None:
        (wd / "data").mkdir()
        (wd / "data" / "hms").symlink_to(synth_hms, target_is_directory=True)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_demo(wd, tiny=True, progress=False)
        assert f"synthetic HMS data ({SYNTH_HMS_EEGS} EEGs)" in out.getvalue(), out.getvalue()[:2000]

    return shared_folder(tmp_path_factory, "demo", build)


@pytest.mark.slow
def test_demo_end_to_end(demo: Path) -> None:
    data_dir = demo / "data" / "hms"
    check_submission(pd.read_csv(demo / "submission.csv"), data_dir)
    weights = json.loads((demo / "outputs" / "tiny_ensemble" / "weights.json").read_text())["weights"]
    assert set(weights) == {"tiny_hms_2d", "tiny_hms_1d"} and abs(sum(weights.values()) - 1) < 1e-6
    lb = pd.read_csv(demo / "outputs" / "leaderboard.csv")
    assert {"tiny_hms_2d", "tiny_hms_1d", "tiny_ensemble"} <= set(lb["name"])
    # the blend scores at least as well as its best member on the common row set it was fitted on
    ens = json.loads((demo / "outputs" / "tiny_ensemble" / "scores.json").read_text())
    assert ens["fit_loss"] <= min(m["fit_loss"] for m in ens["members"].values()) + 1e-6
    assert {json.loads((demo / "outputs" / e / "scores.json").read_text())["n_rows"] for e in weights} == {ens["n_rows"]}
    for exp in ("tiny_hms_2d", "tiny_hms_1d"):
        for k in range(3):
            assert (demo / "outputs" / exp / f"fold{k}" / "best.pt").exists()
    # the configs the demo wrote re-run as they are (validated on load)
    from hbac.config import load_config

    assert load_config(demo / "configs" / "hms_1d.yaml").name == "tiny_hms_1d"


@pytest.mark.slow
def test_submit_script_on_real_test_example(demo: Path, real_hms: Path, tmp_path: Path, capsys) -> None:
    """submit.py's entry point on the real test example, in this process: a fresh `python submit.py` costs ~7 CPU-s
    of imports, and fresh runs are covered by tests/e2e/test_kaggle_bundle.py (the bundle's submit.py, a full run)
    and tests/unit/engine/test_experiment_provenance.py (the repository's submit.py under a file size limit)."""
    out = tmp_path / "submission.csv"
    rc = submit_main(["--data-dir", str(real_hms), "--outputs", str(demo / "outputs"), "--ensemble", "tiny_ensemble", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err[-2000:]
    sub = pd.read_csv(out)
    check_submission(sub, real_hms)
    assert sub["eeg_id"].tolist() == [3911565283]


@pytest.mark.slow
def test_submit_corrupt_test_eeg_is_an_error_unless_prior_fallback(demo: Path, tmp_path: Path, caplog, capsys) -> None:
    src = demo / "data" / "hms"
    data = tmp_path / "hms"
    data.mkdir()
    for name in ("test.csv", "sample_submission.csv"):
        shutil.copy(src / name, data / name)
    shutil.copytree(src / "test_eegs", data / "test_eegs")
    shutil.copytree(src / "test_spectrograms", data / "test_spectrograms")
    test = pd.read_csv(data / "test.csv")
    bad = int(test["eeg_id"].iloc[1])
    (data / "test_eegs" / f"{bad}.parquet").write_bytes(b"PAR1 this is not a parquet file")
    # default: an error that names the file, and no submission written
    with pytest.raises(DataError, match=rf"test_eegs/{bad}\.parquet.*--allow-prior-fallback"):
        make_submission(data, demo / "outputs", ensemble="tiny_ensemble", out=tmp_path / "sub.csv", progress=False)
    assert not (tmp_path / "sub.csv").exists()
    # submit.py's entry point (in this process, as in test_submit_script_on_real_test_example)
    capsys.readouterr()
    rc = submit_main(["--data-dir", str(data), "--outputs", str(demo / "outputs"), "--ensemble", "tiny_ensemble",
                      "--out", str(tmp_path / "cli.csv")])
    err = capsys.readouterr().err
    assert rc != 0 and f"{bad}.parquet" in err and not (tmp_path / "cli.csv").exists()
    # opt-in: the class prior for that row
    sub = make_submission(data, demo / "outputs", ensemble="tiny_ensemble", out=tmp_path / "sub.csv", progress=False, allow_prior_fallback=True)
    check_submission(sub, data)
    assert str(bad) in caplog.text  # the warning names the EEG
    # the unreadable EEG gets the blended class prior: the OOF target mean of the members
    w = json.loads((demo / "outputs" / "tiny_ensemble" / "weights.json").read_text())["weights"]
    prior = sum(wt * pd.read_csv(demo / "outputs" / m / "oof.csv")[HMS_VOTE_COLS].mean().to_numpy() for m, wt in w.items())
    row = sub.loc[sub.eeg_id == bad, HMS_VOTE_COLS].to_numpy()[0]
    np.testing.assert_allclose(row, prior / prior.sum(), atol=1e-6)
    others = sub.loc[sub.eeg_id != bad, HMS_VOTE_COLS].to_numpy()
    assert not np.allclose(others, row)


@pytest.mark.slow
def test_submit_missing_weights_is_named(demo: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    shutil.copytree(demo / "outputs", outputs)
    (outputs / "tiny_hms_1d" / "fold1" / "best.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"tiny_hms_1d/fold1/best\.pt"):
        make_submission(demo / "data" / "hms", outputs, ensemble="tiny_ensemble", out=tmp_path / "s.csv", progress=False)
    assert not (tmp_path / "s.csv").exists()
