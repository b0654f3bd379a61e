"""The shipped HMS ensemble config blends members trained with different selections (all, per_eeg,
min_votes): every experiment is validated on the same rows, so their OOF files align and rank fairly."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from conftest import REPO_ROOT

from hbac.cli import main
from hbac.config import load_config
from hbac.engine.experiment import train_experiment
from hbac.leaderboard import build_leaderboard

TINY = REPO_ROOT / "configs" / "tiny"
# the shipped members, each stood in for by a tiny model with that member's kind of selection
MEMBERS = {
    "hms_effnet_b0_kaggle_eeg": ("hms_2d.yaml", "per_eeg"),
    "hms_mixnet_mel": ("hms_1d.yaml", "all"),
    "hms_eeg1d_gru": ("hms_1d.yaml", "min_votes"),
    "hms_multimodal": ("hms_1d.yaml", "per_eeg"),
}


def test_shipped_ensemble_runs_over_members_with_different_selections(synth_hms: Path, synth_hms_cache: Path,
                                                                    tmp_path: Path, monkeypatch) -> None:
    shipped = load_config(REPO_ROOT / "configs" / "ensemble_hms.yaml")
    assert set(shipped.members) == set(MEMBERS), "the shipped ensemble's members changed: update MEMBERS"
    for name, (tiny, strategy) in MEMBERS.items():
        cfg = load_config(TINY / tiny)
        cfg.name, cfg.selection.strategy = name, strategy
        cfg.selection.min_votes = 5  # min_votes member: below stage 2's 10 (a config check refuses equal thresholds)
        cfg.data.data_dir, cfg.data.cache_root, cfg.output_root = str(synth_hms), str(synth_hms_cache), str(tmp_path / "outputs")
        cfg.train.epochs, cfg.train.stage2.epochs, cfg.train.max_steps_per_epoch = 1, 1, 1  # one step a stage: rows, not learning
        train_experiment(cfg, folds=[0], progress=False)
    oofs = {n: pd.read_csv(tmp_path / "outputs" / n / "oof.csv") for n in MEMBERS}
    ids = {n: sorted(o.sample_id) for n, o in oofs.items()}
    assert all(v == ids["hms_mixnet_mel"] for v in ids.values())  # one canonical row set
    # the shipped config as a user runs it: `python -m hbac ensemble configs/ensemble_hms.yaml` from the project folder
    # (its relative output_root), through the CLI's entry point in this process (a fresh one costs ~7 CPU-s)
    monkeypatch.chdir(tmp_path)
    assert main(["ensemble", str(REPO_ROOT / "configs" / "ensemble_hms.yaml")]) == 0
    scores = json.loads((tmp_path / "outputs" / "ensemble_hms" / "scores.json").read_text())
    assert scores["n_rows"] == len(ids["hms_mixnet_mel"])
    lb = build_leaderboard(tmp_path / "outputs")
    member_scores = [json.loads((tmp_path / "outputs" / n / "scores.json").read_text()) for n in MEMBERS]
    assert {s["n_rows"] for s in member_scores} == {scores["n_rows"]}  # the leaderboard ranks the same rows
    assert set(lb["name"]) >= set(MEMBERS) | {"ensemble_hms"}
