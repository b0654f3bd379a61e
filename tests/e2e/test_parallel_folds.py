"""`train --gpus`: folds scheduled one per device, in parallel processes; faked on the CPU as `--gpus cpu,cpu`.

Two folds on two devices: a real `train --fold K` process each (about 12 CPU-s apiece). How a device takes the next
waiting fold when there are more folds than devices is tested without processes in
tests/unit/engine/test_fold_scheduling.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import REPO_ROOT

from hbac.cli import main
from hbac.engine.parallel import fold_env, parse_devices


def test_devices_and_environment() -> None:
    assert parse_devices("0, 1") == ["0", "1"]
    assert fold_env("1", 2)["CUDA_VISIBLE_DEVICES"] == "1" and fold_env("cpu", 2)["CUDA_VISIBLE_DEVICES"] == ""
    assert int(fold_env("0", 2)["HBAC_THREADS"]) >= 1


def test_each_fold_runs_once_across_devices(synth_hms: Path, synth_hms_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    sets = ["train.epochs=1", "train.max_steps_per_epoch=1", "train.stage2.enabled=false", "folds.n_folds=2"]
    assert main(["train", str(REPO_ROOT / "configs" / "tiny" / "hms_1d.yaml"), "--data-dir", str(synth_hms),
                 "--cache-root", str(synth_hms_cache), "--outputs", str(out), "--gpus", "cpu,cpu"]
                + [x for s in sets for x in ("--set", s)]) == 0
    exp = out / "tiny_hms_1d"
    log = (exp / "train.log").read_text()
    done = sorted(int(k) for k in re.findall(r"fold (\d+) done in", log))
    assert done == [0, 1], log[-2000:]  # each fold trained exactly once
    assert sorted(p.parent.name for p in exp.glob("fold*/best.pt")) == ["fold0", "fold1"]
    scores = json.loads((exp / "scores.json").read_text())
    assert not scores.get("missing_folds") and scores["cv"] is not None
