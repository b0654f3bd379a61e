"""CHB-MIT on the shared machinery: a seizure detector trained on synthetic CHB-MIT learns (windows and
events, well above chance), scores.json carries the seizure section, the leaderboard shows it, and
time-ordered folds train only on earlier data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CHBMIT_FOLDS, CHBMIT_PATIENTS, tiny_chbmit_config

from hbac.config import ExperimentConfig

N_PATIENTS, N_FOLDS = CHBMIT_PATIENTS, CHBMIT_FOLDS


@pytest.fixture(scope="module")
def chbmit_run(trained_chbmit: ExperimentConfig) -> ExperimentConfig:
    """The tiny CHB-MIT experiment trained once per test run (tests/conftest.py `trained_chbmit`)."""
    return trained_chbmit


def _scores(cfg: ExperimentConfig) -> dict:
    return json.loads((cfg.output_dir() / "scores.json").read_text())


def test_detector_learns_windows_and_events(chbmit_run):
    from hbac.tasks.events import seizure_scores

    s = _scores(chbmit_run)
    assert s["task"] == "seizure" and s["dataset"] == "chbmit" and s["missing_folds"] == []
    assert s["metric"] == "event_f1" and s["direction"] == "max" and s["cv"] == s["event_f1"]
    sz = s["seizure"]
    for k in ("auroc", "auprc", "event_sensitivity", "event_precision", "event_f1", "fp_per_24h", "window", "event"):
        assert k in sz, k
    oof = pd.read_csv(chbmit_run.output_dir() / "oof.csv")
    # chance: the same OOF table with the predictions shuffled (keeps the score distribution, breaks the link)
    rng = np.random.default_rng(0)
    chance = seizure_scores(oof.assign(seizure_pred=rng.permutation(oof["seizure_pred"].to_numpy())))
    prevalence = float((oof["seizure_vote"] >= 0.5).mean())
    assert sz["auroc"] > 0.85, f"window AUROC {sz['auroc']:.3f} (chance {chance['auroc']:.3f})"
    assert sz["auprc"] > 3 * prevalence, f"window AUPRC {sz['auprc']:.3f} vs prevalence {prevalence:.3f}"
    assert sz["event"]["n_true"] >= 4
    assert sz["event_sensitivity"] >= 0.5, sz["event"]
    assert sz["event_precision"] >= 0.5 and sz["event_precision"] > chance["event_precision"] + 0.2, (sz["event"], chance["event"])
    assert np.isfinite(sz["fp_per_24h"]) and sz["fp_per_24h"] < chance["fp_per_24h"]


def test_outputs_and_patient_grouped_folds(chbmit_run):
    out = chbmit_run.output_dir()
    oof = pd.read_csv(out / "oof.csv")
    assert {"seizure_overlap", "rec_start_s", "background_pred", "seizure_pred", "fold"} <= set(oof.columns)
    assert np.allclose(oof[["background_pred", "seizure_pred"]].sum(axis=1), 1.0)
    # subject-independent: every patient is validated in exactly one fold, all of its windows there
    assert (oof.groupby("group")["fold"].nunique() == 1).all()
    assert oof["group"].nunique() == N_PATIENTS and oof["fold"].nunique() == N_FOLDS
    for k in range(N_FOLDS):
        ck = torch.load(out / f"fold{k}" / "best.pt", map_location="cpu", weights_only=True)
        assert ck["classes"] == ["background", "seizure"] and ck["fold"] == k
        assert ck["config"]["train"]["loss"] == "focal" and ck["config"]["train"]["sampler"] == "balanced"
        trained_on = set(oof.loc[oof.fold != k, "group"])
        assert not trained_on & set(oof.loc[oof.fold == k, "group"])


def test_leaderboard_shows_seizure_metrics(chbmit_run):
    from hbac.leaderboard import build_leaderboard, render

    lb = build_leaderboard(Path(chbmit_run.output_root))
    row = lb[lb["name"] == chbmit_run.name].iloc[0]
    s = _scores(chbmit_run)
    assert row["task"] == "seizure" and row["dataset"] == "chbmit" and bool(row["complete"])
    assert row["cv"] == pytest.approx(s["event_f1"]) and row["auroc"] == pytest.approx(s["auroc"])
    assert row["event_sensitivity"] == pytest.approx(s["event_sensitivity"])
    assert row["event_precision"] == pytest.approx(s["event_precision"])
    assert row["fp_per_24h"] == pytest.approx(s["fp_per_24h"], nan_ok=True)
    text = render(lb, "text")
    assert "chbmit: seizure (event F1, higher is better)" in text and "fp/24h" in text and "auroc" in text


def _best_row(hist: pd.DataFrame) -> int:
    """Index of the history row with the highest event F1 (ties: higher AUROC, then the earliest)."""
    f1 = hist["val_event_f1"].fillna(-np.inf).to_numpy()
    auroc = hist["val_auroc"].fillna(-np.inf).to_numpy()
    return min(range(len(hist)), key=lambda i: (-f1[i], -auroc[i], i))


def test_best_checkpoint_is_the_best_seizure_epoch(chbmit_run):
    """best.pt is chosen by the seizure task's metric (event F1, then AUROC), and the history and logs speak it."""
    out = chbmit_run.output_dir()
    for k in range(N_FOLDS):
        hist = pd.read_csv(out / f"fold{k}" / "history.csv")
        assert {"val_event_f1", "val_auroc", "val_event_sensitivity", "val_event_precision", "val_fp_per_24h",
                "val_threshold"} <= set(hist.columns)
        assert not [c for c in hist.columns if "kl" in c], list(hist.columns)
        assert len(hist) == chbmit_run.train.epochs
        best = hist.iloc[_best_row(hist)]
        ck = torch.load(out / f"fold{k}" / "best.pt", map_location="cpu", weights_only=False)
        assert ck["metric"] == "event_f1" and ck["epoch"] == int(best["epoch"]), (ck["epoch"], hist[["epoch", "val_event_f1", "val_auroc"]])
        assert ck["score"] == pytest.approx(best["val_event_f1"], nan_ok=True)
        fj = json.loads((out / f"fold{k}" / "fold.json").read_text())
        assert fj["metric"] == "event_f1" and fj["best_epoch"] == ck["epoch"]
    # epoch log lines (train.log holds them when INFO logging is on, as under the CLI)
    for line in (out / "train.log").read_text().splitlines():
        if " epoch " in line and "val " in line:
            assert "val event F1" in line and "AUROC" in line and "KL" not in line and "n_votes" not in line, line


def test_score_command_prints_seizure_metrics(chbmit_run, capsys):
    from hbac.cli import main

    assert main(["score", str(chbmit_run.output_dir() / "oof.csv")]) == 0
    out = capsys.readouterr().out
    names = {line.split(":")[0].strip() for line in out.splitlines() if ":" in line}
    assert {"task", "event_f1", "auroc", "event_sensitivity", "event_precision", "fp_per_24h", "threshold"} <= names
    assert "seizure (event F1, higher is better)" in out and "kl" not in names and "nan" not in out
    s = _scores(chbmit_run)
    assert f"{s['event_f1']:.5f}" in out and f"{s['auroc']:.5f}" in out


def test_time_ordered_folds_train_only_on_earlier_data(synth_chbmit, chbmit_cache_root, tmp_path):
    from hbac.data.split import experiment_table, fold_split
    from hbac.engine.experiment import train_experiment

    cfg = tiny_chbmit_config(synth_chbmit, chbmit_cache_root, overrides={
        "name": "tiny_chbmit_1d_time", "output_root": str(tmp_path / "outputs"), "folds": {"scheme": "time"},
        "train": {"epochs": 1, "max_steps_per_epoch": 2},
    })
    cache, sel, folds = experiment_table(cfg)
    assert sorted(sel["fold"].unique()) == [-1, 0, 1]  # -1: the first block of each patient, training-only history
    for k in range(N_FOLDS):
        tr, va = fold_split(cfg, sel, folds, k)
        assert (va["fold"] == k).all() and (tr["fold"] < k).all()
        for patient, v in va.groupby("group"):
            t = tr[tr["group"] == patient]
            assert len(t), f"fold {k}: no earlier data of {patient} to train on"
            assert t["rec_start_s"].max() < v["rec_start_s"].min(), f"fold {k}, {patient}: trains on later data"
    # and the trainer runs end to end with it: OOF covers every validated row, never the history block
    scores = train_experiment(cfg, progress=False)
    oof = pd.read_csv(cfg.output_dir() / "oof.csv")
    assert len(oof) == int((sel["fold"] >= 0).sum()) and set(oof["fold"]) == set(range(N_FOLDS))
    assert "seizure" in scores and scores["missing_folds"] == []
