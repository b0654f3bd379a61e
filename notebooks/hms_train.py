# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # HMS — train an experiment on a Kaggle GPU (offline)
#
# Inputs: the competition data and the `hbac-bundle` dataset (`python -m hbac kaggle bundle`:
# wheels, configs, timm weights). Internet off. The cache goes to `/tmp` (not saved with the
# notebook); outputs to `/kaggle/working/outputs/<experiment>/`. Re-running after a session
# restart resumes every unfinished fold from its `last.pt` (keep `/kaggle/working` by saving a
# version, or attach the previous version's output). On a machine with two GPUs, one fold runs
# per GPU (a process each, `CUDA_VISIBLE_DEVICES`); otherwise folds run one after the other.

# %%
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ.get("HBAC_KAGGLE_ROOT", "/kaggle"))  # the tests point this at a temporary folder
BUNDLE = ROOT / "input" / os.environ.get("HBAC_BUNDLE", "hbac-bundle")
DATA = ROOT / "input" / "hms-harmful-brain-activity-classification"
OUTPUTS = ROOT / "working" / "outputs"
CACHE = Path(os.environ.get("HBAC_CACHE", "/tmp/hbac_cache"))
CONFIG = BUNDLE / "configs" / os.environ.get("HBAC_CONFIG", "hms_effnet_b0_kaggle_eeg.yaml")
SETS = os.environ.get("HBAC_SETS", "").split()  # extra `--set key=value` overrides, e.g. "train.epochs=3"
FOLDS = None  # e.g. [0] to train one fold this session; None = every fold

if importlib.util.find_spec("hbac") is None:  # offline install from the bundle's wheelhouse
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(BUNDLE / "wheels"), "hbac"],
                   check=True)

# %%
from hbac.config import load_config, parse_sets  # noqa: E402

SET_ARGS = [a for s in SETS for a in ("--set", s)]
PATHS = ["--data-dir", str(DATA), "--cache-root", str(CACHE)]
cfg = load_config(CONFIG, parse_sets(SETS))  # the resolved config: its name and fold count

# `train` prepares the cache first when it is missing (once, before any fold); `--gpus auto`: one fold per GPU at a
# time, a process each (CUDA_VISIBLE_DEVICES), when the machine has two or more, else the folds one after the other
train = [sys.executable, "-m", "hbac", "train", str(CONFIG), *PATHS, "--outputs", str(OUTPUTS), "--resume", *SET_ARGS]
if FOLDS is None:
    subprocess.run(train + ["--gpus", "auto"], check=True)
else:
    for k in FOLDS:
        subprocess.run(train + ["--fold", str(k)], check=True)

# %%
import json  # noqa: E402

scores = json.loads((OUTPUTS / cfg.name / "scores.json").read_text())
print(cfg.name, {k: v for k, v in scores.items() if not isinstance(v, (dict, list))})
