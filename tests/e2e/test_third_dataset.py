"""A third dataset is one module + a config: an adapter written here, registered through `data.plugins`,
runs `prepare`, `train --fold 0`, `score` and `leaderboard` through the public command line, with no
change to any file of the package."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import hbac
from hbac.cli import main

# The whole adapter a user writes for "a folder of fixed-length single-channel segments with a binary
# label": segments/<id>.npy (n_times,) µV at 100 Hz, labels.csv (segment, subject, label 0/1).
ADAPTER = '''
"""Single-channel EEG segments: data_dir/segments/<segment>.npy + data_dir/labels.csv."""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from hbac.datasets import DatasetAdapter, register

FS = 100.0  # Hz
SEGMENT_S = 8.0  # seconds per segment


@dataclass
class SegmentsOptions:
    subjects: Optional[list[str]] = None  # a data-config key of this dataset: only these subjects (null: all)


class SegmentsAdapter(DatasetAdapter):
    name = "segments"
    task = "seizure"  # binary: the same classes as CHB-MIT
    classes = ["background", "seizure"]
    fs = FS
    options = SegmentsOptions

    def table(self, cfg):
        labels = pd.read_csv(Path(cfg.data_dir) / "labels.csv")
        if cfg.options.subjects is not None:
            labels = labels[labels["subject"].isin(cfg.options.subjects)]
        y = labels["label"].to_numpy(np.float64)
        return pd.DataFrame({
            "sample_id": labels["segment"],
            "recording_id": labels["segment"],  # one segment per file, one window per segment
            "group": labels["subject"],
            "start_s": 0.0,
            "duration_s": SEGMENT_S,
            "background_vote": 1.0 - y,
            "seizure_vote": y,
            "n_votes": 1,
        })

    def channels(self, cfg):
        return ["EEG"]

    def path(self, cfg, recording_id):
        return Path(cfg.data_dir) / "segments" / f"{recording_id}.npy"

    def read(self, cfg, recording_id):
        return np.load(self.path(cfg, recording_id)).astype(np.float32)[None, :], FS


register(SegmentsAdapter())
'''

N_SUBJECTS, PER_SUBJECT, FS, SEGMENT_S = 6, 12, 100.0, 8.0


def write_segments(root: Path, seed: int = 0) -> Path:
    """Segments of noise; label-1 segments carry a 7 Hz rhythm a small model can learn."""
    rng = np.random.default_rng(seed)
    (root / "segments").mkdir(parents=True)
    t = np.arange(int(FS * SEGMENT_S)) / FS
    rows = []
    for s in range(N_SUBJECTS):
        for k in range(PER_SUBJECT):
            label = k % 3 == 0
            x = 20.0 * rng.standard_normal(len(t))
            if label:
                x += 60.0 * np.sin(2 * np.pi * 7.0 * t + rng.uniform(0, 2 * np.pi))
            seg = f"s{s}_{k:02d}"
            np.save(root / "segments" / f"{seg}.npy", x.astype(np.float32))
            rows.append({"segment": seg, "subject": f"subj{s}", "label": int(label)})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def hbac_cli(args: list[str], cwd: Path) -> str:
    """`python -m hbac ARGS` in a fresh process (this tree's package first on the path) → its stdout; it must succeed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(hbac.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "hbac", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"python -m hbac {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr[-4000:]}"
    return r.stdout


def test_a_third_dataset_from_one_module_runs_through_the_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    adapter = tmp_path / "my_segments.py"
    adapter.write_text(ADAPTER)
    assert len(ADAPTER.strip().splitlines()) <= 60
    data = write_segments(tmp_path / "inputs" / "segments")
    exp = {
        "name": "segments_1d",
        "output_root": "outputs",
        "data": {
            "name": "segments", "dataset": "segments", "data_dir": str(data), "cache_root": "inputs/cache",
            "plugins": [str(adapter)], "eeg": {"montage": "raw", "bandpass": [0.5, 30.0]},
            "workers": 2,  # a process pool: the workers import the plugin themselves
            "subjects": [f"subj{s}" for s in range(N_SUBJECTS - 1)],  # the adapter's own option: one subject left out
        },
        "folds": {"n_folds": 2, "seed": 0, "scheme": "group"},
        "model": {"kind": "1d", "oned": {"channels": [8, 16], "kernel_size": 7, "blocks_per_stage": 1, "downsample": 4,
                                         "pooling": "avg", "hidden": 16}},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "num_workers": 0, "loss": "focal"},
    }
    (tmp_path / "segments.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))

    # the adapter's option is validated like every key: a wrong type or an undeclared key names the key and the dataset
    # (the CLI's entry point in this process: it loads the plugin here; the fresh process below loads it again)
    monkeypatch.chdir(tmp_path)
    for bad, message in (("data.subjects=subj0", "data.subjects: expected a list"),
                         ("data.patients=[subj0]", "unknown key 'data.patients' for dataset 'segments'")):
        capsys.readouterr()
        assert main(["prepare", "segments.yaml", "--set", bad]) == 2
        err = capsys.readouterr().err
        assert message in err, err

    # prepare in a fresh `python -m hbac` process: the plugin found from the config alone, in a new interpreter
    out = hbac_cli(["prepare", "segments.yaml"], tmp_path)
    cache = tmp_path / "inputs" / "cache" / "segments"
    assert "cache ready" in out and (cache / "eeg.npy").is_file()
    meta = json.loads((cache / "meta.json").read_text())
    n = (N_SUBJECTS - 1) * PER_SUBJECT  # subjects: the last one left out
    assert meta["params"]["subjects"] == exp["data"]["subjects"]  # in the cache hash, at the data config's top level
    assert meta["dataset"] == "segments" and meta["n_samples"] == n and meta["channels"] == ["EEG"]
    assert meta["eeg_shape"] == [n * int(FS * SEGMENT_S), 1] and meta["extras"] == {} and meta["skipped"] == {}
    assert meta["workers"] == 2 and meta["task"] == "seizure"  # read by 2 worker processes, each importing the plugin

    # train, score and leaderboard: the CLI's entry point in this process (a fresh `python -m hbac train` costs ~10 CPU-s
    # of imports; fresh training processes are covered by tests/e2e/test_parallel_folds.py, test_ddp.py, test_notebooks.py)
    assert main(["train", "segments.yaml", "--fold", "0"]) == 0
    run = tmp_path / "outputs" / "segments_1d"
    for f in ("config.yaml", "fold0/best.pt", "fold0/oof.csv", "oof.csv", "scores.json"):
        assert (run / f).is_file(), f
    oof = pd.read_csv(run / "oof.csv")
    assert len(oof) > 0 and set(oof["fold"]) == {0} and {"seizure_pred", "seizure_vote"} <= set(oof.columns)
    assert np.isfinite(oof["seizure_pred"]).all()
    assert math.isfinite(float(json.loads((run / "scores.json").read_text())["cv"]))

    capsys.readouterr()
    assert main(["score", str(run / "oof.csv")]) == 0
    out = capsys.readouterr().out
    values = [float(v) for v in re.findall(r":\s*(-?\d+\.\d+(?:e-?\d+)?)\s*$", out, flags=re.M)]
    assert values and math.isfinite(values[0]), out

    assert main(["leaderboard", "--outputs", "outputs"]) == 0
    out = capsys.readouterr().out
    assert "segments_1d" in out
