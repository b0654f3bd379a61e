"""Experiment loggers (`train.logger`): where a fold's per-epoch scalars go besides the console line.

Every fold always writes `fold{k}/history.csv` (epoch, stage, lr, train_loss, val_<metric> named by the
task, time_s; `engine.outputs.write_fold_files`): that file IS the `csv` logger, so `csv` (the default) and
`none` add nothing to it. `tensorboard` also writes event files under `fold{k}/tensorboard/`
(`tensorboard --logdir outputs/<experiment>`); `wandb` logs to Weights & Biases, offline unless the user
sets `WANDB_MODE` (no network at run time). Only rank 0 of a torchrun job logs.
"""
from __future__ import annotations

import importlib
import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping, Protocol

from hbac.errors import ConfigError

log = logging.getLogger(__name__)

LOGGERS = ("none", "csv", "tensorboard", "wandb")
NOT_SCALARS = ("epoch", "stage", "epoch_in_stage")  # the step and its labels, not curves


class LoggerMissing(ConfigError):
    """The package a `train.logger` choice needs is not installed; the message names the pip extra (the CLI prints it
    as a one-line error)."""


class EpochLogger(Protocol):
    """Receives one row per epoch (the history row) and is closed when the fold ends."""

    def log_epoch(self, row: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric values of a history row, without the epoch counters (tag → value)."""
    out = {}
    for k, v in row.items():
        if k in NOT_SCALARS or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out[k] = float(v)
    return out


class HistoryOnly:
    """`none` / `csv`: the fold's history.csv is the record; nothing more is written."""

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


class TensorBoardLogger:
    """Scalars of each epoch row as TensorBoard events in `log_dir` (step = the fold's epoch number)."""

    def __init__(self, log_dir: Path) -> None:
        try:  # optional dependency: torch.utils.tensorboard needs the `tensorboard` package
            tb = importlib.import_module("torch.utils.tensorboard")
        except ImportError as e:
            raise LoggerMissing(
                f"train.logger tensorboard needs the tensorboard package: pip install 'hbac[tensorboard]' "
                f"(or pip install tensorboard) [{e}]") from None
        self.writer = tb.SummaryWriter(log_dir=str(log_dir))

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for tag, v in scalars(row).items():
            self.writer.add_scalar(tag, v, global_step=int(row["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """Each epoch row to a Weights & Biases run named `<experiment>-<fold dir>`; offline unless WANDB_MODE is set."""

    def __init__(self, out_dir: Path, name: str, config: Mapping[str, Any]) -> None:
        try:  # optional and never a dependency: only when the user installed it
            self.wandb = importlib.import_module("wandb")
        except ImportError:
            raise LoggerMissing("train.logger wandb needs the wandb package, which is not installed: pip install wandb "
                                "(or choose train.logger csv or tensorboard)") from None
        mode = os.environ.get("WANDB_MODE", "offline")  # no network at run time unless the user asks for it
        self.run = self.wandb.init(project=os.environ.get("WANDB_PROJECT", "hbac"), name=name, config=dict(config),
                                   dir=str(out_dir), mode=mode, reinit=True)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self.run.log(scalars(row), step=int(row["epoch"]))

    def close(self) -> None:
        self.run.finish()


def open_logger(kind: str, fold_dir: Path, name: str, config: Mapping[str, Any]) -> EpochLogger:
    """The logger for `train.logger` = `kind`, writing under `fold_dir`; LoggerMissing when its package is absent."""
    if kind in ("none", "csv"):
        return HistoryOnly()
    if kind == "tensorboard":
        return TensorBoardLogger(Path(fold_dir) / "tensorboard")
    if kind == "wandb":
        return WandbLogger(Path(fold_dir), name, config)
    raise ValueError(f"train.logger {kind!r}: expected one of {', '.join(LOGGERS)}")
