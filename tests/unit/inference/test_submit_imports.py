"""`submit.py`'s start-up imports only what its members need: no timm/torchvision for 1D models, no scipy.signal.
The same process checks a `train` process's start-up: no scikit-learn (folds import it when they are made: torchrun
ranks, `--gpus` children and resumed runs read the fold file) and no skops (feature experiments only), and a `detect`
process's: no captum (Grad-CAM, `--explain` only) and no onnx/onnxruntime (`--onnx` only)."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO_ROOT

CHECK = """
import importlib.util, sys
import hbac.cli, hbac.engine.experiment  # a train process: sklearn only to make folds, skops only for features
import hbac.inference.submit
import hbac.inference.detect  # a detect process: captum only for --explain, onnxruntime only for --onnx
from hbac.models import model_class
for kind in ("1d", "wavenet", "effnet1d"):
    model_class(kind)
HEAVY = ("timm", "torchvision", "scipy.signal", "sklearn", "skops", "captum", "onnx", "onnxruntime")
print(",".join(m for m in HEAVY if m in sys.modules) or "-")
print(all(importlib.util.find_spec(m) for m in HEAVY))  # real module names (found, not imported: timm alone costs 5 s)
"""


def test_one_d_members_do_not_import_timm_or_scipy_signal():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    heavy, names_exist = r.stdout.strip().splitlines()[-2:]
    assert heavy == "-", f"imported at start-up for 1D members: {heavy}"
    assert names_exist == "True"  # so the check above can see them
