"""`train.logger`: validated choices, and a clear error naming the package when an optional logger's is absent."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from hbac.config import ExperimentConfig, from_dict
from hbac.engine.loggers import HistoryOnly, LoggerMissing, open_logger, scalars
from hbac.errors import ConfigError


def test_logger_choice_is_validated() -> None:
    base = {"name": "x", "data": {"name": "d"}}
    assert from_dict(ExperimentConfig, base).train.logger == "csv"  # default: the fold's history.csv
    assert from_dict(ExperimentConfig, {**base, "train": {"logger": "tensorboard"}}).train.logger == "tensorboard"
    with pytest.raises(ConfigError, match="logger"):
        from_dict(ExperimentConfig, {**base, "train": {"logger": "mlflow"}})


def test_csv_and_none_add_nothing_to_history(tmp_path: Path) -> None:
    for kind in ("csv", "none"):
        lg = open_logger(kind, tmp_path, "x", {})
        assert isinstance(lg, HistoryOnly)
        lg.log_epoch({"epoch": 1, "train_loss": 1.0})
        lg.close()
    assert list(tmp_path.iterdir()) == []


def test_scalars_keep_finite_numbers_only() -> None:
    row = {"epoch": 3, "stage": "stage1", "epoch_in_stage": 3, "lr": 1e-3, "train_loss": 0.5, "val_kl": float("nan"), "ok": True}
    assert scalars(row) == {"lr": 1e-3, "train_loss": 0.5}


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_absent_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(LoggerMissing, match="train.logger wandb needs the wandb package.*pip install wandb"):
        open_logger("wandb", tmp_path, "x", {})


def test_tensorboard_absent_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the tensorboard package were missing
    with pytest.raises(LoggerMissing, match=r"hbac\[tensorboard\]"):
        open_logger("tensorboard", tmp_path, "x", {})
