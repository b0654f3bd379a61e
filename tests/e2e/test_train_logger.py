"""`train.logger: tensorboard`: a tiny fold writes event files whose scalars are the history's per-epoch values."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from hbac.config import load_config
from hbac.engine.experiment import train_experiment


def test_tensorboard_events_hold_the_epoch_losses(synth_hms: Path, synth_hms_cache: Path, tmp_path: Path) -> None:
    # imported here, not at collection: 0.25 s in every pytest-xdist worker, for this one test
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                            reason="the tensorboard package (extra `tensorboard`) is not installed")
    cfg = load_config(REPO_ROOT / "configs" / "tiny" / "hms_1d.yaml", {
        "data": {"data_dir": str(synth_hms), "cache_root": str(synth_hms_cache)}, "output_root": str(tmp_path / "outputs"),
        "train": {"epochs": 2, "max_steps_per_epoch": 2, "logger": "tensorboard", "stage2": {"epochs": 1}},
    })
    train_experiment(cfg, folds=[0], progress=False)
    fold = cfg.output_dir() / "fold0"
    assert list((fold / "tensorboard").glob("events.out.tfevents.*"))
    acc = event_accumulator.EventAccumulator(str(fold / "tensorboard"))
    acc.Reload()
    hist = pd.read_csv(fold / "history.csv")
    assert {"train_loss", "val_kl", "val_kl_min_votes", "lr", "time_s"} <= set(acc.Tags()["scalars"])
    loss = acc.Scalars("train_loss")
    assert [e.step for e in loss] == hist["epoch"].tolist() == [1, 2, 3]  # both stages, one point per epoch
    np.testing.assert_allclose([e.value for e in loss], hist["train_loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in acc.Scalars("val_kl")], hist["val_kl"], rtol=1e-6)
