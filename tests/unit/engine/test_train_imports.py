"""A `train` process imports scikit-learn only to make folds and skops only for a feature-model experiment: every
torchrun rank, `--gpus` child and resumed run reads the fold file and would otherwise pay about 3-5 CPU-s."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO_ROOT

CHECK = """
import sys
import pandas as pd
import hbac.cli, hbac.engine.experiment
print(",".join(m for m in ("sklearn", "skops") if m in sys.modules) or "-")
from hbac.data.folds import make_folds
t = pd.DataFrame({"sample_id": range(8), "recording_id": range(8), "group": [0, 0, 1, 1, 2, 2, 3, 3],
                  "a_vote": [1, 0] * 4, "b_vote": [0, 1] * 4})
print(sorted(make_folds(t, n_folds=2, seed=0)["fold"].unique().tolist()), "sklearn" in sys.modules)
"""


def test_train_start_up_leaves_out_sklearn_and_skops() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    heavy, folds = r.stdout.strip().splitlines()[-2:]
    assert heavy == "-", f"imported at a train process's start-up: {heavy}"
    assert folds == "[0, 1] True"  # group folds do import scikit-learn when they are made
