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
# # CHB-MIT — train a seizure detector and run it on a recording (offline)
#
# Inputs: a dataset holding the CHB-MIT folders (`chb01/…edf`, `chb01-summary.txt`, …) and the
# `hbac-bundle` dataset (wheels and configs). Internet off. Cache in `/tmp`, outputs in
# `/kaggle/working/outputs`; re-running resumes unfinished folds.

# %%
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ.get("HBAC_KAGGLE_ROOT", "/kaggle"))  # the tests point this at a temporary folder
BUNDLE = ROOT / "input" / os.environ.get("HBAC_BUNDLE", "hbac-bundle")
DATA = ROOT / "input" / os.environ.get("HBAC_CHBMIT", "chb-mit-scalp-eeg-database")
OUTPUTS = ROOT / "working" / "outputs"
CACHE = Path(os.environ.get("HBAC_CACHE", "/tmp/hbac_cache"))
CONFIG = BUNDLE / "configs" / os.environ.get("HBAC_CONFIG", "chbmit_eeg1d.yaml")
SETS = os.environ.get("HBAC_SETS", "").split()  # extra `--set key=value` overrides

if importlib.util.find_spec("hbac") is None:  # offline install from the bundle's wheelhouse
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(BUNDLE / "wheels"), "hbac"],
                   check=True)

# %%
import yaml  # noqa: E402

name = yaml.safe_load(CONFIG.read_text())["name"]
SET_ARGS = [a for s in SETS for a in ("--set", s)]
subprocess.run([sys.executable, "-m", "hbac", "train", str(CONFIG), "--data-dir", str(DATA), "--cache-root", str(CACHE),
                "--outputs", str(OUTPUTS), "--resume", *SET_ARGS], check=True)

# %%
edf = sorted(DATA.rglob("*.edf"))[-1]  # any recording: here the last one
det = ROOT / "working" / "detect" / edf.stem
subprocess.run([sys.executable, "-m", "hbac", "detect", str(edf), "--outputs", str(OUTPUTS), "--name", name,
                "--out", str(det)], check=True)
print(sorted(p.name for p in det.iterdir()))
