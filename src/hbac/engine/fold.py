"""One fold's training loop (two-stage), checkpoints, resume, history.

`best.pt` is the epoch of the final stage whose validation scores are best by the task's
primary metric in its direction (`Task.is_better`: HMS KL lower, seizure event F1 higher,
ties by AUROC). The history names the task's metrics (`val_<metric>` columns).

Determinism: every epoch reseeds python/numpy/torch from `seed + fold` and the epoch
index, so a run resumed from `last.pt` sees the same batches and augmentations as an
uninterrupted one and ends with the same weights (on a CPU). So `last.pt` holds no RNG
state, only tensors and plain values: every checkpoint loads with `weights_only=True`.

Under torchrun (`engine.runtime.init_distributed`) every rank trains its shard of each epoch through
DistributedDataParallel (`FoldRun.net`; `FoldRun.model` is the unwrapped module every checkpoint is saved
from); validation predictions are gathered back into the table's row order, rank 0 scores them and its
scores (so the best.pt decision) are broadcast; only rank 0 writes files and logs.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from hbac.config import ExperimentConfig, to_dict
from hbac.data.augment import mixup
from hbac.data.dataset import experiment_dataset, model_n_times
from hbac.data.pseudo import apply_pseudo_labels
from hbac.data.split import experiment_table, fold_rows, sample_weights, select_training
from hbac.engine.loggers import EpochLogger, HistoryOnly, open_logger
from hbac.engine.loop import make_loader, predict_loader
from hbac.engine.losses import build_loss
from hbac.engine.checkpoint import load_checkpoint, save_checkpoint
from hbac.engine.outputs import oof_frame, write_fold_files
from hbac.engine.provenance import experiment_hash, fold_finished
from hbac.engine.runtime import (
    amp_dtype,
    barrier,
    broadcast_buffers,
    broadcast_object,
    device_auto,
    gather_objects,
    grad_scaler,
    is_distributed,
    is_main,
    mean_across,
    place_model,
    seed_everything,
    to_device,
    world_size,
    wrap_ddp,
)
from hbac.engine.schedule import EMA, make_scheduler
from hbac.models import build_model, count_parameters
from hbac.tasks import Task, task_for

log = logging.getLogger(__name__)


def _fold_seed(cfg: ExperimentConfig, fold: int, epoch: int) -> int:
    return (cfg.train.seed + fold) * 100_003 + epoch


@dataclass
class Stage:
    name: str
    table: pd.DataFrame
    epochs: int
    lr: float


def training_stages(cfg: ExperimentConfig, rows: pd.DataFrame) -> list[Stage]:
    """Stage 1 on the selection of all training `rows`; stage 2 on the selection of the rows whose
    own label had >= stage2.min_votes votes (filtered before `per_eeg` aggregates them)."""
    stages = [Stage("stage1", select_training(cfg, rows), cfg.train.epochs, cfg.train.lr)]
    s2 = cfg.train.stage2
    if s2.enabled:
        hi = select_training(cfg, rows, min_votes=s2.min_votes)
        if len(hi) == 0:
            log.warning("stage 2: no training rows with n_votes >= %d; skipped", s2.min_votes)
        else:
            stages.append(Stage("stage2", hi, s2.epochs, s2.lr))
    return stages


@dataclass
class FoldRun:
    """Everything one fold's stages share: config, data, model, task, and the progress so far."""

    cfg: ExperimentConfig
    fold: int
    out: Path
    device: torch.device
    cache: Any
    task: Task
    va: pd.DataFrame
    va_loader: Any
    model: torch.nn.Module  # the module itself: checkpoints, EMA and evaluation use it
    net: torch.nn.Module  # what training calls: `model` in DistributedDataParallel under torchrun, else `model`
    loss_fn: Callable[..., torch.Tensor]
    stages: list[Stage]
    n_times: int
    n_params: int
    progress: bool
    dt: Optional[torch.dtype]
    scaler: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    best: Optional[dict[str, Any]] = None  # validation scores of the best final-stage epoch so far
    t0: float = 0.0
    on_epoch: Optional[Callable[[int, float], None]] = None  # called with (epoch, primary metric) after each epoch
    logger: EpochLogger = field(default_factory=HistoryOnly)  # train.logger (rank 0; HistoryOnly elsewhere)

    @property
    def classes(self) -> list[str]:
        return list(self.cache.classes)

    @property
    def channels(self) -> list[str]:
        return list(self.cache.channels)


@dataclass
class Optim:
    """One stage's optimiser state."""

    dataset: Any
    loader: Any
    gen: torch.Generator
    steps: int
    opt: torch.optim.Optimizer
    sched: Any
    ema: Optional[EMA]


def train_fold(
    cfg: ExperimentConfig, fold: int, resume: bool = False, data: Any = None, progress: bool = True,
    out_dir: Optional[Path] = None, on_epoch: Optional[Callable[[int, float], None]] = None,
) -> pd.DataFrame:
    """Train one fold; write best.pt, last.pt, history.csv, curve.png, oof.csv, fold.json in `out_dir` (default
    fold{k}/); return its OOF. With `resume`, an unfinished fold continues from its last.pt, and a fold that finished
    with this config (`fold_finished`) returns its oof.csv without building anything (even when last.pt was deleted).

    `on_epoch(epoch, val_score)` is called after every epoch's validation with the task's primary metric (NaN when
    undefined; its direction is `task_for(cfg).direction`); hyper-parameter search prunes from it by raising. The
    checkpoint and history of that epoch are already written.
    """
    out = out_dir if out_dir is not None else cfg.output_dir() / f"fold{fold}"
    if resume and fold_finished(out, experiment_hash(cfg)):  # before the model is built; also without last.pt
        log.info("fold %d already finished with this config (fold.json); nothing to resume", fold)
        return pd.read_csv(out / "oof.csv")
    run = _setup(cfg, fold, data, progress, out)
    run.on_epoch = on_epoch
    ckpt_state = _resume_state(run, resume)
    if ckpt_state is not None and ckpt_state.get("complete"):
        log.info("fold %d already complete (last.pt); nothing to resume", fold)
        return pd.read_csv(run.out / "oof.csv")
    if is_main():
        run.logger = open_logger(cfg.train.logger, run.out, f"{cfg.name}-fold{fold}" + ("" if out_dir is None else f"-{run.out.name}"),
                                 to_dict(cfg))
    try:
        start_stage = ckpt_state["stage_index"] if ckpt_state else 0
        for si in range(start_stage, len(run.stages)):
            _run_stage(run, si, ckpt_state if si == start_stage else None)
        return _finish(run)
    finally:
        run.logger.close()


def _setup(cfg: ExperimentConfig, fold: int, data: Any, progress: bool, out: Path) -> FoldRun:
    """Split the fold, build the model, the loss and the validation loader; the fold's files go to `out`."""
    cache, table, folds = data if data is not None else experiment_table(cfg)
    tr, va = fold_rows(cfg, table, folds, fold)  # va: every labelled row of the fold, whatever the selection
    if cfg.train.pseudo is not None:  # stage 1 learns low-vote rows' targets blended with a teacher's OOF
        tr = apply_pseudo_labels(cfg.train.pseudo, tr)
    stages = training_stages(cfg, tr)
    if len(stages[0].table) == 0 or len(va) == 0:
        raise ValueError(f"fold {fold}: {len(stages[0].table)} training rows, {len(va)} validation rows")
    if is_main():  # under torchrun only rank 0 writes
        out.mkdir(parents=True, exist_ok=True)
    device = device_auto()
    task = task_for(cfg, list(cache.classes))
    n_times = model_n_times(cfg, float(va["duration_s"].iloc[0]), cache.fs)

    seed_everything(_fold_seed(cfg, fold, -1))
    model = build_model(cfg.model, n_classes=len(cache.classes), channels=list(cache.channels), fs=float(cache.fs), n_times=n_times,
                        window_filter=cache.window_filter)
    model = place_model(model, device)
    if hasattr(model, "set_spec_augment"):  # masks on the in-model EEG spectrogram (training mode only)
        model.set_spec_augment(cfg.augment.time_mask, cfg.augment.freq_mask)
    va_loader = make_loader(cfg, experiment_dataset(cfg, cache, va), train=False)
    dt = amp_dtype(cfg.train.amp, device)
    run = FoldRun(
        cfg=cfg, fold=fold, out=out, device=device, cache=cache, task=task, va=va, va_loader=va_loader, model=model,
        net=wrap_ddp(model, device), loss_fn=build_loss(cfg.train), stages=stages, n_times=n_times,
        n_params=count_parameters(model), progress=progress and is_main(), dt=dt, scaler=grad_scaler(dt),
    )
    log.info("fold %d: %d train rows, %d validation rows, %s params, device %s%s%s, task %s (best.pt by %s, %s)",
             fold, len(stages[0].table), len(va), f"{run.n_params:,}", device, f", amp {dt}" if dt else "",
             f", DDP over {world_size()} processes" if is_distributed() else "", task.name, task.label(task.metric),
             task.better_word())
    return run


def _resume_state(run: FoldRun, resume: bool) -> Optional[dict[str, Any]]:
    """last.pt's state when resuming (model weights, best scores and history restored into `run`), else None."""
    last_path = run.out / "last.pt"
    run.t0 = time.time()
    if not resume:
        return None
    if not last_path.exists():
        log.info("fold %d: no last.pt, starting from scratch", run.fold)
        return None
    ckpt_state = load_checkpoint(last_path, map_location=run.device)
    if ckpt_state.get("complete"):
        return ckpt_state
    run.model.load_state_dict(ckpt_state["model"])
    run.best = _as_scores(run.task, ckpt_state["best"])
    run.history = ckpt_state["history"]
    run.t0 = time.time() - ckpt_state["elapsed_s"]
    log.info("fold %d: resuming %s at epoch %d", run.fold, run.stages[ckpt_state["stage_index"]].name, ckpt_state["epoch_in_stage"] + 2)
    return ckpt_state


def _as_scores(task: Task, best: Any) -> Optional[dict[str, Any]]:
    """last.pt's "best": a scores dict (a bare number from older checkpoints is the primary metric)."""
    if isinstance(best, dict):
        return best
    if isinstance(best, (int, float)) and math.isfinite(best):
        return {task.metric: float(best)}
    return None


def _make_optim(run: FoldRun, st: Stage) -> Optim:
    """Loader, optimiser, per-step schedule and EMA of one stage."""
    cfg = run.cfg
    tr_ds = experiment_dataset(
        cfg, run.cache, st.table, train=True, weights=sample_weights(cfg, st.table),
        min_votes=cfg.train.stage2.min_votes if st.name == "stage2" else None,  # per_eeg random: high-vote windows only
    )
    gen = torch.Generator()
    loader = make_loader(cfg, tr_ds, train=True, gen=gen)
    steps = len(loader) if cfg.train.max_steps_per_epoch is None else min(len(loader), cfg.train.max_steps_per_epoch)
    opt = torch.optim.AdamW(run.model.parameters(), lr=st.lr, weight_decay=cfg.train.weight_decay)
    sched = make_scheduler(opt, cfg.train.schedule, steps * st.epochs, cfg.train.warmup_frac, st.lr)
    ema = EMA(run.model, cfg.train.ema) if cfg.train.ema else None
    return Optim(tr_ds, loader, gen, steps, opt, sched, ema)


def _run_stage(run: FoldRun, si: int, ckpt_state: Optional[dict[str, Any]]) -> None:
    """Train stage `si` epoch by epoch (from last.pt's position when `ckpt_state` is given)."""
    st = run.stages[si]
    o = _make_optim(run, st)
    e0 = 0
    if ckpt_state is not None:
        o.opt.load_state_dict(ckpt_state["optimizer"])
        o.sched.load_state_dict(ckpt_state["scheduler"])
        run.scaler.load_state_dict(ckpt_state["scaler"])
        if o.ema is not None and ckpt_state.get("ema") is not None:
            o.ema.shadow = ckpt_state["ema"]
        e0 = ckpt_state["epoch_in_stage"] + 1
    elif si > 0:
        run.best = None  # best.pt is the best epoch of the final stage
    global_epoch = sum(s.epochs for s in run.stages[:si]) + e0
    for epoch in range(e0, st.epochs):
        seed = _fold_seed(run.cfg, run.fold, global_epoch)
        seed_everything(seed)
        o.gen.manual_seed(seed)
        o.dataset.set_epoch(seed)  # per_eeg random sub-windows of this epoch
        if hasattr(o.loader.sampler, "set_epoch"):  # torchrun: this epoch's shuffle, the same on every rank
            o.loader.sampler.set_epoch(seed)
        te = time.time()
        losses = _train_epoch(run, o, f"fold {run.fold} {st.name} epoch {epoch + 1}/{st.epochs}")
        eval_model = _with_weights(run.model, o.ema.shadow) if o.ema is not None else run.model
        scores = _evaluate(run, eval_model, f"fold {run.fold} {st.name} epoch {epoch + 1} val")
        row = {
            "epoch": global_epoch + 1, "stage": st.name, "epoch_in_stage": epoch + 1, "lr": float(o.sched.get_last_lr()[0]),
            "train_loss": mean_across(float(np.mean(losses)) if losses else float("nan")),  # over every rank's batches
            **{f"val_{k}": (float("nan") if v is None else v) for k, v in scores.items()}, "time_s": time.time() - te,
        }
        run.history.append(row)
        # the first final-stage epoch is kept even when its metric is undefined (e.g. no seizure in validation);
        # `scores` are rank 0's (broadcast), so every rank takes the same decision
        improved = si == len(run.stages) - 1 and (run.best is None or run.task.is_better(scores, run.best))
        if improved:
            run.best = scores
            _save_best(run, eval_model, st, global_epoch + 1, scores)
        _log_epoch(run, st, epoch, global_epoch, row, scores, improved)
        _save_last(run, o, st, si, epoch, global_epoch + 1, scores)
        if is_main():
            write_fold_files(run.out, run.task, run.history)
        global_epoch += 1
        if run.on_epoch is not None:
            primary = scores.get(run.task.metric)
            run.on_epoch(global_epoch, float("nan") if primary is None else float(primary))


def _log_epoch(run: FoldRun, st: Stage, epoch: int, global_epoch: int, row: dict[str, Any], scores: dict[str, Any],
               improved: bool) -> None:
    """The epoch's console line (train loss, the task's validation headline, lr, time, ETA) and `train.logger` row."""
    done, total = global_epoch + 1, sum(s.epochs for s in run.stages)  # ETA: mean epoch time so far × epochs left
    log.info("fold %d %s epoch %d/%d: train loss %.4f, val %s, lr %.2e, %.0f s, ETA %.0f s%s", run.fold, st.name,
             epoch + 1, st.epochs, row["train_loss"], run.task.headline(scores), row["lr"], row["time_s"],
             (time.time() - run.t0) / done * (total - done), "  *best*" if improved else "")
    run.logger.log_epoch(row)


def _train_epoch(run: FoldRun, o: Optim, desc: str) -> list[float]:
    """One pass over the stage's loader (at most `steps` batches; this rank's shard under torchrun); returns the
    batch losses."""
    cfg, model, dt = run.cfg, run.net, run.dt
    model.train()
    losses: list[float] = []
    bar = tqdm(total=o.steps, desc=desc, leave=False, disable=not run.progress)
    for step, batch in enumerate(o.loader):
        if step >= o.steps:
            break
        batch = to_device(batch, run.device)
        if cfg.augment.mixup > 0 and np.random.rand() < cfg.augment.mixup:
            batch = mixup(batch, cfg.augment.mixup_alpha)
        with torch.autocast(device_type=run.device.type, dtype=dt or torch.float32, enabled=dt is not None):
            logits = model(batch)
        loss = run.loss_fn(logits.float(), batch["target"], batch["weight"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc} step {step}: loss is {loss.item()}")
        o.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.train.grad_clip:
            run.scaler.unscale_(o.opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        run.scaler.step(o.opt)
        run.scaler.update()
        o.sched.step()
        if o.ema is not None:
            o.ema.update(run.model)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", lr=f"{o.sched.get_last_lr()[0]:.2e}")
    bar.close()
    return losses


def _evaluate(run: FoldRun, model: torch.nn.Module, desc: str) -> dict[str, Any]:
    """The task's validation scores of `model` on the fold's validation rows (no TTA): rank 0's, on every rank."""
    broadcast_buffers(model)  # torchrun: every rank predicts with rank 0's BatchNorm statistics, as best.pt will hold
    probs = _predict_rows(run, model, desc)
    scores = run.task.epoch_scores(oof_frame(run.va, probs, run.classes, run.fold)) if is_main() else None
    return broadcast_object(scores)


def _predict_rows(run: FoldRun, model: torch.nn.Module, desc: str, tta: bool = False) -> np.ndarray:
    """(len(va), K) probabilities of the validation rows in table order (with the config's TTA when `tta`).

    Under torchrun each rank predicts its shard of `run.va_loader` (`loader.sampler` order, padded to a multiple
    of the world size by repeating rows); the shards are gathered and put back by row index.
    """
    kw = {"tta_flip": run.cfg.tta.hemisphere_flip, "offsets_s": run.cfg.tta.offsets_s} if tta else {}
    probs = predict_loader(model, run.va_loader, run.device, run.cfg.train.amp, progress=run.progress,
                           desc=desc, **kw)
    if not is_distributed():
        return probs
    idx = np.fromiter(iter(run.va_loader.sampler), dtype=np.int64)
    return assemble_shards(gather_objects((idx, probs)), len(run.va))


def assemble_shards(shards: list[tuple[np.ndarray, np.ndarray]], n_rows: int) -> np.ndarray:
    """(n_rows, K) from each rank's (row indices (n,), probabilities (n, K)); a padding duplicate repeats its row's
    prediction, so it is simply written twice. A row no rank predicted is a RuntimeError."""
    k = next((p.shape[1] for _, p in shards if p.ndim == 2 and len(p)), 0)
    out = np.full((n_rows, k), np.nan)
    seen = np.zeros(n_rows, bool)
    for idx, p in shards:
        if len(idx) != len(p):
            raise RuntimeError(f"validation shard: {len(idx)} row indices but {len(p)} predictions")
        out[idx] = p
        seen[idx] = True
    if not seen.all():
        raise RuntimeError(f"validation: {int((~seen).sum())} of {n_rows} rows predicted by no rank")
    return out


def _meta(run: FoldRun, st: Stage, epoch: int, scores: dict[str, Any]) -> dict[str, Any]:
    """What every checkpoint carries besides weights."""
    return {
        "config": to_dict(run.cfg), "epoch": epoch, "stage": st.name, "score": scores.get(run.task.metric),
        "metric": run.task.metric, "scores": scores, "fold": run.fold, "n_params": run.n_params,
    }


def _save_best(run: FoldRun, model: torch.nn.Module, st: Stage, epoch: int, scores: dict[str, Any]) -> None:
    """best.pt (rank 0 only) from the unwrapped `model`: loads in one process."""
    if not is_main():
        return
    save_checkpoint(run.out / "best.pt", {
        "model": model.state_dict(), **_meta(run, st, epoch, scores), "classes": run.classes,
        "channels": run.channels, "fs": float(run.cache.fs), "n_times": run.n_times, "window_filter": run.cache.window_filter, "config_hash": experiment_hash(run.cfg),
    })


def _save_last(run: FoldRun, o: Optim, st: Stage, si: int, epoch_in_stage: int, epoch: int, scores: dict[str, Any]) -> None:
    """last.pt (rank 0 only): weights, optimiser, schedule, scaler, EMA, best scores and history for an exact resume."""
    if not is_main():
        return
    save_checkpoint(run.out / "last.pt", {
        "model": run.model.state_dict(), "optimizer": o.opt.state_dict(), "scheduler": o.sched.state_dict(),
        "scaler": run.scaler.state_dict(), "ema": o.ema.shadow if o.ema is not None else None,
        **_meta(run, st, epoch, scores), "stage_index": si, "epoch_in_stage": epoch_in_stage, "best": run.best,
        "history": run.history, "elapsed_s": time.time() - run.t0, "complete": False,
    })


def _finish(run: FoldRun) -> pd.DataFrame:
    """OOF with the best weights (TTA as configured); write the fold's files; mark last.pt complete."""
    out, fold = run.out, run.fold
    barrier()  # rank 0 has written best.pt
    best_ckpt = load_checkpoint(out / "best.pt", map_location=run.device)
    run.model.load_state_dict(best_ckpt["model"])
    probs = _predict_rows(run, run.model, f"fold {fold} oof", tta=True)
    oof = oof_frame(run.va, probs, run.classes, fold)
    elapsed = time.time() - run.t0
    if not is_main():
        barrier()  # returns once rank 0 has written the fold's files
        return oof
    info = {"fold": fold, "best_score": best_ckpt["score"], "best_epoch": best_ckpt["epoch"], "train_time_s": elapsed,
            "n_params": run.n_params, "config_hash": experiment_hash(run.cfg)}
    write_fold_files(out, run.task, run.history, oof, info, title=f"{run.cfg.name} fold {fold}")
    last = load_checkpoint(out / "last.pt", map_location="cpu")
    last["complete"] = True
    save_checkpoint(out / "last.pt", last)
    barrier()
    log.info("fold %d done in %.0f s: best val %s (epoch %d)", fold, elapsed,
             run.task.headline(best_ckpt.get("scores") or {run.task.metric: best_ckpt["score"]}), best_ckpt["epoch"])
    return oof


def _with_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    m = copy.deepcopy(model)
    m.load_state_dict(state)
    return m
