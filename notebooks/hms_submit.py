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
# # HMS — submission (offline)
#
# Inputs: the competition data and the `hbac-bundle` dataset (`python -m hbac kaggle bundle
# --experiments <ensemble>`: wheels, the experiments' checkpoints and configs, the ensemble's
# `weights.json`). Internet off. Installs `hbac` from the bundle's wheelhouse with no index, then
# runs the bundle's `submit.py` with the ensemble.

# %%
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ.get("HBAC_KAGGLE_ROOT", "/kaggle"))  # the tests point this at a temporary folder
BUNDLE = ROOT / "input" / os.environ.get("HBAC_BUNDLE", "hbac-bundle")
DATA = ROOT / "input" / "hms-harmful-brain-activity-classification"
OUT = ROOT / "working" / "submission.csv"
ENSEMBLE = os.environ.get("HBAC_ENSEMBLE")  # None: the best HMS entry among the bundled outputs

if importlib.util.find_spec("hbac") is None:  # offline install from the bundle's wheelhouse
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(BUNDLE / "wheels"), "hbac"],
                   check=True)

# %%
args = [sys.executable, "submit.py", "--data-dir", str(DATA), "--outputs", "outputs", "--out", str(OUT)]
args += ["--ensemble", ENSEMBLE] if ENSEMBLE else []
subprocess.run(args, cwd=BUNDLE, check=True)  # from the bundle root: configs name timm/<weights> relative to it

# %%
import pandas as pd  # noqa: E402

sub = pd.read_csv(OUT)
print(sub.shape, sub.iloc[:, 1:].sum(axis=1).round(6).unique())
sub.head()
