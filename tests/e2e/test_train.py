"""Training for real on tiny synthetic data: models learn, two-stage helps, resume is exact."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO_ROOT, shared_folder

from hbac.config import deep_update, load_config, with_overrides
from hbac.engine.experiment import train_experiment
from hbac.tasks.kl import kl_score

REPO = REPO_ROOT
TINY = REPO / "configs" / "tiny"


def tiny_cfg(name: str, data_dir: Path, root: Path, extra: Optional[dict] = None, **train):
    """A tiny config pointed at `data_dir` / `root`, with `train` keys and `extra` overrides (validated on load)."""
    overrides = {
        "data": {"data_dir": str(data_dir), "cache_root": str(root / Path(data_dir).parent.name / "cache")},  # caches and folds per dataset
        "output_root": str(root / "outputs"),
        "train": train,
    }
    return load_config(TINY / name, deep_update(overrides, extra or {}))


def prior_kl(oof: pd.DataFrame) -> float:
    """KL of predicting the (validation-set) class prior for every row: the no-skill baseline."""
    t = oof.filter(regex="_vote$").to_numpy()
    return kl_score(t, np.tile(t.mean(axis=0), (len(t), 1)))


@pytest.fixture(scope="module")
def workroot(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


# The tiny multimodal model is not in this list: it stays just short of the 0.85 x prior bar on
# votes >= 10 (0.888 against 0.823 with one thread) and, as a non-strict xfail, cost two minutes of
# every run without being able to fail. tests/e2e/test_techniques.py trains it (weights move, finite CV).
# hms_1d: 5 epochs (was 8; 6 CPU-s less). Fold 0, votes >= 10 KL / prior: 0.700, 0.721 and 0.594 with
# train.seed 42, 7 and 123 (bar 0.85; 0.561 after 8 epochs); all rows 0.853, 0.872, 0.786 (bar 0.95); with lr 1e-12
# (no learning) 1.152 and 1.048: the test fails.
# hms_2d: 6 epochs on a 64x128 image (the config resizes its 128x256 tiling to 128x128: 0.824 against the 0.85 bar).
# Votes >= 10 KL / prior 0.565, 0.563, 0.546 with train.seed 42, 7, 123 (bar 0.85); all rows 0.812, 0.821, 0.756
# (bar 0.95); with lr 1e-12 in both stages (seed 42) 1.168 on votes >= 10 and 1.070 on all rows: the test fails.
# 53 CPU-s instead of 74. At 4 epochs the 64x128 margin was thin again (0.819 with seed 42).
@pytest.mark.parametrize("config,epochs,extra", [
    ("hms_1d.yaml", 5, {}),
    ("hms_2d.yaml", 6, {"model": {"image_size": [64, 128]}}),
], ids=["hms_1d", "hms_2d"])
def test_models_learn_below_prior(config, epochs, extra, synth_hms_60, workroot):
    cfg = tiny_cfg(config, synth_hms_60, workroot, extra, epochs=epochs)
    cfg = with_overrides(cfg, {"name": cfg.name + "_learn"})
    scores = train_experiment(cfg, folds=[0], progress=False)
    oof = pd.read_csv(cfg.output_dir() / "oof.csv")
    hi = oof[oof.n_votes >= 10]
    base, base_hi = prior_kl(oof), prior_kl(hi)
    # low-vote rows are one noisy impression (often a wrong class): all-row KL has a high floor
    assert scores["cv"] < 0.95 * base, f"{config}: val KL {scores['cv']:.3f} not below the prior's {base:.3f}"
    assert scores["cv_min_votes"] < 0.85 * base_hi, f"{config}: KL on n_votes >= 10 {scores['cv_min_votes']:.3f} vs prior {base_hi:.3f}"
    # the outputs of a fold are all there
    fold = cfg.output_dir() / "fold0"
    for f in ("best.pt", "last.pt", "history.csv", "curve.png", "oof.csv"):
        assert (fold / f).exists(), f
    ck = torch.load(fold / "best.pt", weights_only=True)
    assert ck["config"]["name"] == cfg.name and ck["fold"] == 0 and np.isfinite(ck["score"])
    assert scores["missing_folds"] == [1, 2]


@pytest.fixture(scope="session")
def synth_hms_biased(synth_hms_60, tmp_path_factory) -> Path:
    """`synth_hms_60` whose low-vote raters say "other" half the time: the shift two-stage training fixes.

    The same recordings (linked, not rewritten: the bias changes only the votes) with the biased train.csv.
    """
    from hbac.datasets.synthetic import hms_train_table

    def build(root: Path) -> None:
        out = root / "hms"
        out.mkdir()
        for sub in ("train_eegs", "train_spectrograms", "test_eegs", "test_spectrograms"):
            (out / sub).symlink_to(synth_hms_60 / sub, target_is_directory=True)
        for name in ("test.csv", "sample_submission.csv"):
            shutil.copy(synth_hms_60 / name, out / name)
        hms_train_table(60, seed=0, n_test=4, low_vote_other=0.5).to_csv(out / "train.csv", index=False)

    return shared_folder(tmp_path_factory, "synth_hms_biased", build) / "hms"


# stage 1: 4 epochs (was 8). Votes >= 10 KL, end of stage 1 -> best of stage 2: 1.217 -> 1.071, 1.131 -> 1.045,
# 1.151 -> 1.006 with train.seed 42, 7, 123 (8 epochs, seed 42: 1.186 -> 1.032); stage 2 at lr 1e-12: 1.217 -> 1.230, fails.
def test_two_stage_improves_high_vote_kl(synth_hms_biased, workroot):
    cfg = tiny_cfg("hms_1d.yaml", synth_hms_biased, workroot, {"name": "two_stage", "data": {"name": "tiny_hms_biased"}}, epochs=4)
    train_experiment(cfg, folds=[0], progress=False)
    hist = pd.read_csv(cfg.output_dir() / "fold0" / "history.csv")
    s1 = hist[hist.stage == "stage1"].val_kl_min_votes.iloc[-1]
    s2 = hist[hist.stage == "stage2"].val_kl_min_votes.min()
    assert s2 < s1, f"stage 2 did not improve KL on n_votes >= 10 rows: {s1:.4f} → {s2:.4f}"


def _shared(cache_root: Path) -> dict:
    """Overrides pointing a tiny HMS config on `synth_hms` at the prepared `synth_hms_cache` (read only)."""
    return {"data": {"cache_root": str(cache_root)}}


def test_resume_matches_uninterrupted(synth_hms, synth_hms_cache, workroot, monkeypatch):
    import hbac.engine.outputs as train_mod  # writes history.csv right after last.pt

    full = tiny_cfg("hms_1d.yaml", synth_hms, workroot, {"name": "resume_full", **_shared(synth_hms_cache)}, epochs=2, max_steps_per_epoch=3, stage2={"epochs": 1})
    train_experiment(full, folds=[0], progress=False)

    cut = tiny_cfg("hms_1d.yaml", synth_hms, workroot, {"name": "resume_cut", **_shared(synth_hms_cache)}, epochs=2, max_steps_per_epoch=3, stage2={"epochs": 1})
    real_write = train_mod.atomic_write_csv
    calls = {"n": 0}

    def interrupt_after_first_epoch(path, df, **kw):
        real_write(path, df, **kw)
        calls["n"] += 1
        if Path(path).name == "history.csv" and calls["n"] == 1:
            raise KeyboardInterrupt  # as if Ctrl-C came right after epoch 1's checkpoint

    monkeypatch.setattr(train_mod, "atomic_write_csv", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_experiment(cut, folds=[0], progress=False)
    monkeypatch.setattr(train_mod, "atomic_write_csv", real_write)
    last = torch.load(cut.output_dir() / "fold0" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and not last["complete"]
    train_experiment(cut, folds=[0], resume=True, progress=False)

    a = torch.load(full.output_dir() / "fold0" / "last.pt", weights_only=True)["model"]
    b = torch.load(cut.output_dir() / "fold0" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"weights differ after resume: {k}")
    ha = pd.read_csv(full.output_dir() / "fold0" / "history.csv")
    hb = pd.read_csv(cut.output_dir() / "fold0" / "history.csv")
    np.testing.assert_allclose(ha.val_kl, hb.val_kl)
    assert list(hb.stage) == ["stage1", "stage1", "stage2"]


def test_resume_over_finished_folds_trains_nothing_and_imports_no_torch(trained_hms_1d, tmp_path, monkeypatch):
    """`train --resume` (a restarted notebook) over finished folds rewrites the scores in a fresh process that never
    imports torch and leaves every checkpoint as it was; an unfinished or other-config fold is trained as before."""
    import os
    import subprocess
    import sys

    from hbac.engine.experiment import nothing_to_resume

    exp = tmp_path / "outputs" / trained_hms_1d.name
    shutil.copytree(trained_hms_1d.output_dir(), exp)  # the shared experiment stays read only
    (exp / "scores.json").unlink()
    cfg = with_overrides(trained_hms_1d, {"output_root": str(tmp_path / "outputs")})
    weights = {p: p.stat().st_mtime_ns for p in exp.glob("fold*/*.pt")}
    assert len(weights) == 6
    code = "import sys, hbac.cli; rc = hbac.cli.main(sys.argv[1:]); print('torch imported:', 'torch' in sys.modules); sys.exit(rc)"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    r = subprocess.run([sys.executable, "-c", code, "train", str(exp / "config.yaml"), "--outputs", str(tmp_path / "outputs"),
                        "--resume", "--gpus", "auto"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "torch imported: False" in r.stdout and "nothing trained" in r.stdout, r.stdout
    assert {p: p.stat().st_mtime_ns for p in weights} == weights
    scores = json.loads((exp / "scores.json").read_text())
    assert scores["missing_folds"] == [] and np.isfinite(scores["cv"])
    # what still trains: a fold without fold.json (stopped before its end), a changed config, a torchrun rank
    assert nothing_to_resume(cfg) and nothing_to_resume(cfg, [2])
    (exp / "fold2" / "fold.json").unlink()
    assert not nothing_to_resume(cfg) and not nothing_to_resume(cfg, [2]) and nothing_to_resume(cfg, [0, 1])
    assert not nothing_to_resume(with_overrides(cfg, {"train": {"lr": cfg.train.lr * 2}}), [0, 1])
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not nothing_to_resume(cfg, [0, 1])
    monkeypatch.delenv("WORLD_SIZE")
    # in a run that does train (fold 2 has no fold.json), a finished fold whose last.pt was deleted (to save space)
    # is kept as it is, not trained again from scratch
    (exp / "fold0" / "last.pt").unlink()
    scores = train_experiment(cfg, resume=True, progress=False)  # fold 2: its last.pt says complete, it is not retrained
    assert {p: p.stat().st_mtime_ns for p in exp.glob("fold*/best.pt")} == {p: t for p, t in weights.items() if p.name == "best.pt"}
    assert not (exp / "fold0" / "last.pt").exists() and scores["missing_folds"] == []


def test_cli_single_fold_and_scores(synth_hms, synth_hms_cache, workroot, tmp_path):
    import yaml

    from hbac.cli import main
    from hbac.config import save_config

    cfg = tiny_cfg("hms_1d.yaml", synth_hms, workroot, {"name": "cli_fold", **_shared(synth_hms_cache)}, epochs=1, max_steps_per_epoch=2, stage2={"enabled": False})
    path = tmp_path / "exp.yaml"
    save_config(cfg, path)
    assert main(["train", str(path), "--fold", "1"]) == 0
    out = cfg.output_dir()
    assert (out / "fold1" / "best.pt").exists() and not (out / "fold0").exists()
    scores = json.loads((out / "scores.json").read_text())
    assert scores["missing_folds"] == [0, 2] and "1" in scores["folds"]
    oof = pd.read_csv(out / "oof.csv")
    assert set(oof.fold) == {1}
    assert yaml.safe_load((out / "config.yaml").read_text())["name"] == "cli_fold"
    # out-of-range fold: a clear error, exit code 2
    assert main(["train", str(path), "--fold", "7"]) == 2
