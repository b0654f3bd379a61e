"""Where `python submit.py`'s time goes: imports, test cache, model load, data, forward, write, other.

Builds, in a temp folder, a synthetic HMS competition folder with N test EEGs in Kaggle's test
layout (`hbac.datasets.synthetic.write_hms` writes a few test recordings; test.csv lists N rows
whose EEG / spectrogram files are symlinks to them under new ids) and an ensemble of the shipped
full-size configs (default: the EfficientNet-B0 2D model and the 1D GRU model) with random
weights saved as every fold's `best.pt`, exactly as training writes them (config.yaml, the
checkpoint's config, channels, fs, window length, window filter, config hash), and an ensemble
`weights.json`. Nothing is trained: the forward time of the real architectures is what Kaggle
pays. Then runs `python submit.py --profile` in a fresh subprocess for each N and prints the
split and the share of the time spent outside the models' forward passes, with and without the
imports (goal: <= 20 %).

    python benchmarks/submit.py [--n 4 200 1000] [--configs A.yaml B.yaml] [--folds K] [--keep DIR]

`--folds` (default: each config's folds.n_folds) trades fidelity for time on a CPU. The
split's keys: imports (Python imports: torch, the model families), cache (the test cache, built
in-process for a few files), model_load (checkpoints read, models built), data (batches read,
collated, moved, flipped for TTA), forward (the models), write (submission.csv), other (the rest:
reading test.csv and the ensemble, interpreter start-up is not counted).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from hbac.config import ExperimentConfig, load_config, save_config, to_dict, with_overrides
from hbac.data.dataset import model_n_times
from hbac.datasets import adapter_for
from hbac.datasets.hms import HMS_VOTE_COLS
from hbac.datasets.synthetic import write_hms
from hbac.engine.checkpoint import save_checkpoint
from hbac.engine.outputs import checkpoint_paths
from hbac.engine.provenance import experiment_hash
from hbac.io import atomic_write_text
from hbac.models import build_model
from hbac.signals.montage import montage_names

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ["configs/hms_effnet_b0_kaggle_eeg.yaml", "configs/hms_eeg1d_gru.yaml"]
KEYS = ["imports", "cache", "model_load", "data", "forward", "write", "other"]


def write_test_folder(out: Path, n: int, n_sources: int = 8) -> None:
    """An HMS folder whose test.csv lists `n` EEGs: `n_sources` synthetic test recordings, symlinked under new ids."""
    src = out.parent / f"{out.name}_src"
    if not (src / "test.csv").exists():
        write_hms(src, n_eegs=4, seed=0, n_test=n_sources)
    base = pd.read_csv(src / "test.csv")
    for sub in ("test_eegs", "test_spectrograms"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        r = base.iloc[i % len(base)]
        eeg_id, spec_id = 10_000_000 + i, 20_000_000 + i
        for sub, old, new in (("test_eegs", r.eeg_id, eeg_id), ("test_spectrograms", r.spectrogram_id, spec_id)):
            link = out / sub / f"{new}.parquet"
            if not link.exists():
                link.symlink_to((src / sub / f"{old}.parquet").resolve())
        rows.append({"spectrogram_id": spec_id, "eeg_id": eeg_id, "patient_id": int(r.patient_id)})
    test = pd.DataFrame(rows)
    test.to_csv(out / "test.csv", index=False)
    sub = pd.DataFrame({"eeg_id": test["eeg_id"]} | {c: 1 / len(HMS_VOTE_COLS) for c in HMS_VOTE_COLS})
    sub.to_csv(out / "sample_submission.csv", index=False)


def write_member(cfg: ExperimentConfig, outputs: Path, folds: Optional[int]) -> str:
    """outputs/<name>/: config.yaml and every fold's best.pt (random weights, the metadata training writes); returns the name."""
    if folds:
        cfg = with_overrides(cfg, {"folds": {"n_folds": folds}}, f"{cfg.name} (benchmark)")
    exp = outputs / cfg.name
    save_config(cfg, exp / "config.yaml")
    adapter = adapter_for(cfg.data)
    fs = float(cfg.data.eeg.fs or adapter.fs)
    n_times = model_n_times(cfg, adapter.sample_s(cfg.data)[1], fs)
    channels, classes = montage_names(cfg.data.eeg.montage), list(adapter.classes)
    for k, path in enumerate(checkpoint_paths(exp, cfg)):
        torch.manual_seed(k)
        model = build_model(dataclasses.replace(cfg.model, pretrained=False), len(classes), channels, fs, n_times,
                            window_filter=cfg.data.window_filter())
        save_checkpoint(path, {
            "model": model.state_dict(), "config": to_dict(cfg), "epoch": 0, "stage": "benchmark", "score": None, "fold": k,
            "classes": classes, "channels": channels, "fs": fs, "n_times": n_times, "window_filter": cfg.data.window_filter(),
            "config_hash": experiment_hash(cfg),
        })
    return cfg.name


def run_submit(data: Path, outputs: Path, ensemble: str, out: Path) -> dict[str, float]:
    """`python submit.py --profile` in a fresh process → {key: seconds} and `total`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(REPO / "submit.py"), "--data-dir", str(data), "--outputs", str(outputs), "--ensemble", ensemble,
           "--out", str(out), "--profile"]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"submit.py failed ({r.returncode}):\n{r.stderr[-3000:]}")
    split = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s+(\w+):\s+([\d.]+) s", r.stdout, re.M)}
    split["total"] = float(re.search(r"time split \(total ([\d.]+) s\)", r.stdout).group(1))
    split["wall"] = wall
    return split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[4, 200, 1000], help="test EEGs per run (default 4 200 1000)")
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="ensemble members (experiment configs)")
    p.add_argument("--folds", type=int, default=None, help="folds per member, >= 2 (default: each config's n_folds)")
    p.add_argument("--keep", default=None, help="work folder to keep (default: a temp folder, removed)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="hbac_bench_submit_") as tmp:
        root = Path(a.keep or tmp)
        outputs = root / "outputs"
        names = [write_member(load_config(REPO / c if not Path(c).is_absolute() else c), outputs, a.folds) for c in a.configs]
        atomic_write_text(outputs / "bench_ensemble" / "weights.json",
                          '{"weights": {' + ", ".join(f'"{n}": {1 / len(names)}' for n in names) + "}}")
        folds = {n: len(list((outputs / n).glob("fold*/best.pt"))) for n in names}
        print(f"ensemble: {', '.join(f'{n} ({k} folds)' for n, k in folds.items())}; torch threads {torch.get_num_threads()}, "
              f"{'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")
        print(f"{'N':>6} {'total s':>8} " + " ".join(f"{k:>10}" for k in KEYS) + f" {'outside fwd':>12} {'w/o imports':>12}")
        for n in a.n:
            data = root / f"hms_{n}"
            write_test_folder(data, n)
            s = run_submit(data, outputs, "bench_ensemble", root / f"submission_{n}.csv")
            tot, fwd, imp = s["total"], s.get("forward", 0.0), s.get("imports", 0.0)
            print(f"{n:>6} {tot:>8.2f} " + " ".join(f"{s.get(k, 0.0):>10.2f}" for k in KEYS)
                  + f" {100 * (1 - fwd / tot):>11.1f}% {100 * (1 - fwd / max(tot - imp, 1e-9)):>11.1f}%", flush=True)


if __name__ == "__main__":
    main()
