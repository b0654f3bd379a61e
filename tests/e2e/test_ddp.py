"""`torchrun --nproc_per_node=2 -m hbac train CONFIG --fold 0`: DistributedDataParallel with the gloo backend on the CPU.

The DDP fold must write what a single-process fold writes (same OOF columns, rows and order), a best.pt that
loads and predicts in one process exactly as the OOF file says, and a history whose train loss falls.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO_ROOT, shared_folder
from torch.distributed.run import main as torchrun_main

from hbac.cli import main
from hbac.config import load_config
from hbac.data.dataset import experiment_dataset
from hbac.data.split import experiment_table, fold_rows
from hbac.engine.loop import make_loader, predict_loader
from hbac.engine.checkpoint import load_checkpoint
from hbac.models import build_model

CONFIG = REPO_ROOT / "configs" / "tiny" / "hms_1d.yaml"
SETS = ["train.epochs=2", "train.stage2.enabled=false", "train.lr=0.003", "train.batch_size=16"]
QUICK = ["train.epochs=1", "train.max_steps_per_epoch=1"]  # the single-process run only gives the OOF format


def _args(data: Path, cache_root: Path, outputs: Path, sets: list[str]) -> list[str]:
    return ["train", str(CONFIG), "--data-dir", str(data), "--cache-root", str(cache_root), "--outputs", str(outputs),
            "--fold", "0"] + [x for s in sets for x in ("--set", s)]


def _torchrun_cmd(args: list[str], nproc: int = 2) -> tuple[list[str], dict[str, str]]:
    """`python -m torch.distributed.run --standalone --nproc_per_node=N -m hbac <args>` on the CPU (gloo), one thread each."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HBAC_THREADS="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "hbac", *args], env


def _torchrun_here(args: list[str], log_dir: Path, nproc: int = 2) -> str:
    """torchrun's own launcher (`torch.distributed.run.main`, the same argv) in a thread of this process → the workers'
    stderr (rank 0's, then rank 1's). The workers are fresh `python -m hbac` processes as under `python -m
    torch.distributed.run`; only the launcher's own process (~6 CPU-s importing torch) is saved. A thread, so that
    the launcher registers no signal handlers here; the preempted run in test_ddp_resume_matches_uninterrupted is
    a real `python -m torch.distributed.run` process."""
    cmd, env = _torchrun_cmd(args, nproc)
    argv = cmd[3:-len(args) - 2] + ["--log-dir", str(log_dir), "--redirects", "3"] + cmd[-len(args) - 2:]
    failed: list[BaseException] = []

    def launch() -> None:
        try:
            torchrun_main(argv)
        except BaseException as e:  # noqa: BLE001 - ChildFailedError or SystemExit: reported below with the workers' stderr
            failed.append(e)

    saved = dict(os.environ)
    os.environ.update(env)  # what the workers inherit; restored below (the launcher also sets TORCHELASTIC_* keys)
    try:
        t = threading.Thread(target=launch)
        t.start()
        t.join(timeout=600)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    err = "".join(f.read_text() for f in sorted(log_dir.rglob("stderr.log"), key=lambda f: f.parent.name))
    assert not t.is_alive() and not failed, f"torchrun {' '.join(args)}: {failed}\n{err[-4000:]}"
    return err


@pytest.fixture(scope="session")
def runs(synth_hms: Path, synth_hms_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fold 0 trained once in this process and once by torchrun with two gloo processes (the shared cache),
    once per test run (also across xdist workers); the two workers' stderr in `ddp_stderr.txt`. Read only."""

    def build(root: Path) -> None:
        assert main(_args(synth_hms, synth_hms_cache, root / "single", SETS + QUICK)) == 0
        t = time.time()
        err = _torchrun_here(_args(synth_hms, synth_hms_cache, root / "ddp", SETS + ["train.logger=csv"]), root / "ddp_logs")
        print(f"DDP run (2 processes, gloo): {time.time() - t:.1f} s")
        (root / "ddp_stderr.txt").write_text(err)

    root = shared_folder(tmp_path_factory, "ddp_runs", build)
    return {"single": root / "single" / "tiny_hms_1d", "ddp": root / "ddp" / "tiny_hms_1d", "data": synth_hms,
            "cache": synth_hms_cache, "stderr": root / "ddp_stderr.txt"}


def test_ddp_console_one_line_per_epoch_from_rank_0(runs: dict[str, Path]) -> None:
    err = runs["stderr"].read_text()
    assert "DDP over 2 processes" in err, err[-2000:]
    # one console line per epoch, from rank 0 only: train loss, val KL (all rows and votes >= 10), lr, time, ETA
    lines = re.findall(r"fold 0 stage1 epoch \d/2: train loss [\d.]+, val KL [\d.]+, KL \(n_votes >= 10\) \S+, "
                       r"lr \S+, \d+ s, ETA \d+ s", err)
    assert len(lines) == 2, err[-3000:]


def test_ddp_oof_matches_single_process_format(runs: dict[str, Path]) -> None:
    one = pd.read_csv(runs["single"] / "fold0" / "oof.csv")
    two = pd.read_csv(runs["ddp"] / "fold0" / "oof.csv")
    assert list(two.columns) == list(one.columns)
    assert len(two) == len(one) and two["sample_id"].tolist() == one["sample_id"].tolist()  # order restored, no padding rows
    preds = two.filter(regex="_pred$").to_numpy()
    assert np.isfinite(preds).all() and np.allclose(preds.sum(axis=1), 1.0, atol=1e-6)
    for f in ("best.pt", "last.pt", "history.csv", "curve.png", "fold.json"):
        assert (runs["ddp"] / "fold0" / f).exists(), f
    assert (runs["ddp"] / "scores.json").exists() and (runs["ddp"] / "config.yaml").exists()


def test_ddp_train_loss_falls(runs: dict[str, Path]) -> None:
    hist = pd.read_csv(runs["ddp"] / "fold0" / "history.csv")
    assert hist["epoch"].tolist() == [1, 2]
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0], hist[["epoch", "train_loss"]]
    assert list(hist.columns) == list(pd.read_csv(runs["single"] / "fold0" / "history.csv").columns)


def test_ddp_checkpoint_predicts_in_one_process(runs: dict[str, Path]) -> None:
    """best.pt (saved from the unwrapped module) loads strictly in one process and reproduces the DDP OOF."""
    ckpt = load_checkpoint(runs["ddp"] / "fold0" / "best.pt")
    assert not any(k.startswith("module.") for k in ckpt["model"])
    cfg = load_config(runs["ddp"] / "config.yaml")
    cache, table, folds = experiment_table(cfg)
    _, va = fold_rows(cfg, table, folds, 0)
    model = build_model(cfg.model, n_classes=len(ckpt["classes"]), channels=ckpt["channels"], fs=ckpt["fs"],
                        n_times=ckpt["n_times"], window_filter=ckpt["window_filter"])
    model.load_state_dict(ckpt["model"])  # strict
    loader = make_loader(cfg, experiment_dataset(cfg, cache, va), train=False)
    probs = predict_loader(model, loader, torch.device("cpu"), cfg.train.amp,
                           tta_flip=cfg.tta.hemisphere_flip, offsets_s=cfg.tta.offsets_s, progress=False)
    oof = pd.read_csv(runs["ddp"] / "fold0" / "oof.csv")
    assert np.allclose(probs, oof[[f"{c}_pred" for c in ckpt["classes"]]].to_numpy(), atol=1e-5)


def test_ddp_resume_matches_uninterrupted(runs: dict[str, Path], tmp_path: Path) -> None:
    """A torchrun fold stopped after epoch 1 (SIGTERM to torchrun, as a preempted session) and run again with
    --resume ends with the uninterrupted DDP run's weights and history."""
    out = tmp_path / "ddp_cut"
    args = _args(runs["data"], runs["cache"], out, SETS + ["train.logger=csv"])
    cmd, env = _torchrun_cmd(args)
    hist = out / "tiny_hms_1d" / "fold0" / "history.csv"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (hist.exists() and len(pd.read_csv(hist)) >= 1):  # history.csv is written right after last.pt
            assert proc.poll() is None and time.time() < deadline, "the DDP run ended before its first epoch was written"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, "the run was meant to be stopped after epoch 1"
    last = load_checkpoint(out / "tiny_hms_1d" / "fold0" / "last.pt")
    assert last["epoch"] == 1 and not last["complete"], err[-2000:]
    _torchrun_here(args + ["--resume"], tmp_path / "resume_logs")
    a = load_checkpoint(runs["ddp"] / "fold0" / "last.pt")["model"]
    b = load_checkpoint(out / "tiny_hms_1d" / "fold0" / "last.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"weights differ after a DDP resume: {k}")
    np.testing.assert_allclose(pd.read_csv(hist)["val_kl"], pd.read_csv(runs["ddp"] / "fold0" / "history.csv")["val_kl"])
