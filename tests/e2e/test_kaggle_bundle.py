"""The Kaggle bundle installs with the network off into a fresh venv and its submit.py writes a valid submission."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from test_demo_submit import check_submission

from hbac.cli import main


def _offline_env() -> dict[str, str]:
    """No PYTHONPATH, no pip config (its find-links/index), no index at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env.update(PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(args: list, cwd: Path) -> str:
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=_offline_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout


def test_bundle_installs_offline_and_submits(synth_hms: Path, trained_hms_1d, tmp_path: Path) -> None:
    outputs = Path(trained_hms_1d.output_root)  # tiny_hms_1d, 3 folds, trained once per run (read only: bundle copies)
    bundle = tmp_path / "bundle"
    # --no-deps: the dependency wheels come from PyPI (pip download); here the system has them all
    assert main(["kaggle", "bundle", "--outputs", str(outputs), "--experiments", "tiny_hms_1d", "--out", str(bundle),
                 "--id", "me/hbac-bundle", "--no-deps"]) == 0
    wheels = sorted(p.name for p in (bundle / "wheels").iterdir())
    assert wheels == ["hbac-0.1.0-py3-none-any.whl"]
    assert sorted(p.name for p in (bundle / "outputs" / "tiny_hms_1d").rglob("best.pt")) == ["best.pt"] * 3

    venv = tmp_path / "venv"
    # --without-pip: the system's pip and setuptools serve the venv (a venv's own old setuptools would shadow torch's need)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    # the development copy of hbac may be installed system-wide: replace it in the venv, from the bundle only
    _run([py, "-m", "pip", "install", "--no-index", "--find-links", bundle / "wheels", "--no-deps", "--force-reinstall", "hbac"], cwd)
    _run([py, "-m", "pip", "install", "--no-index", "--find-links", bundle / "wheels", "hbac"], cwd)  # deps resolve offline
    where = _run([py, "-c", "import hbac; print(hbac.__file__)"], cwd).strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where

    out = tmp_path / "submission.csv"
    _run([py, bundle / "submit.py", "--data-dir", synth_hms, "--outputs", "outputs", "--experiment", "tiny_hms_1d",
          "--out", out], bundle)
    check_submission(pd.read_csv(out), synth_hms)
