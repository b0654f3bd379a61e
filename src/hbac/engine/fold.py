"""One fold's training loop (two-stage), checkpoints, resume, history.

Determinism: every epoch reseeds python/numpy/torch from `seed + fold` and the epoch
index, so a run resumed from `last.pt` sees the same batches and augmentations as an
uninterrupted one and ends with the same weights (on a CPU). So `last.pt` holds no RNG
state, only tensors and plain values: every checkpoint loads with `weights_only=True`.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
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
from hbac.data.selection import vote_columns
from hbac.data.split import experiment_table, fold_split, sample_weights
from hbac.engine.loop import make_loader, predict_loader
from hbac.engine.losses import build_loss
from hbac.engine.outputs import (
    load_checkpoint,
    oof_frame,
    plot_history,
    save_checkpoint,
)
from hbac.engine.runtime import amp_dtype, device_auto, seed_everything, to_device
from hbac.engine.schedule import EMA, make_scheduler
from hbac.io import atomic_write_csv, atomic_write_json
from hbac.models import build_model, count_parameters
from hbac.tasks.kl import kl_score

log = logging.getLogger(__name__)


def _fold_seed(cfg: ExperimentConfig, fold: int, epoch: int) -> int:
    return (cfg.train.seed + fold) * 100_003 + epoch


@dataclass
class Stage:
    name: str
    table: pd.DataFrame
    epochs: int
    lr: float


def _stages(cfg: ExperimentConfig, tr: pd.DataFrame) -> list[Stage]:
    stages = [Stage("stage1", tr, cfg.train.epochs, cfg.train.lr)]
    s2 = cfg.train.stage2
    if s2.enabled:
        hi = tr[tr.n_votes >= s2.min_votes].reset_index(drop=True)
        if len(hi) == 0:
            log.warning("stage 2: no training rows with n_votes >= %d; skipped", s2.min_votes)
        else:
            stages.append(Stage("stage2", hi, s2.epochs, s2.lr))
    return stages


def train_fold(
    cfg: ExperimentConfig, fold: int, resume: bool = False, data: Any = None, progress: bool = True,
    out_dir: Optional[Path] = None, on_epoch: Optional[Callable[[int, float], None]] = None,
) -> pd.DataFrame:
    """Train one fold; write best.pt, last.pt, history.csv, curve.png, oof.csv in `out_dir` (default fold{k}/); return its OOF.

    `on_epoch(epoch, val_score)` is called after every epoch's validation (hyper-parameter search
    prunes from it by raising); the checkpoint and history of that epoch are already written.
    """

    cache, sel, folds = data if data is not None else experiment_table(cfg)
    tr, va = fold_split(cfg, sel, folds, fold)
    if cfg.train.pseudo is not None:  # stage 1 learns low-vote rows' targets blended with a teacher's OOF
        tr = apply_pseudo_labels(cfg.train.pseudo, tr)
    out = out_dir if out_dir is not None else cfg.output_dir() / f"fold{fold}"
    out.mkdir(parents=True, exist_ok=True)
    device = device_auto()
    classes = list(cache.classes)
    vcols = vote_columns(va)
    n_times = model_n_times(cfg, float(va["duration_s"].iloc[0]), cache.fs)

    seed_everything(_fold_seed(cfg, fold, -1))
    model = build_model(cfg.model, n_classes=len(classes), channels=list(cache.channels), fs=float(cache.fs), n_times=n_times).to(device)
    n_params = count_parameters(model)
    if hasattr(model, "set_spec_augment"):  # masks on the in-model EEG spectrogram (training mode only)
        model.set_spec_augment(cfg.augment.time_mask, cfg.augment.freq_mask)
    loss_fn = build_loss(cfg.train)
    stages = _stages(cfg, tr)
    va_ds = experiment_dataset(cfg, cache, va)
    va_loader = make_loader(cfg, va_ds, train=False)
    va_targets = va[vcols].to_numpy(np.float64)
    hi_mask = va["n_votes"].to_numpy() >= 10
    dt = amp_dtype(cfg.train.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dt == torch.float16)
    log.info("fold %d: %d train rows, %d validation rows, %s params, device %s%s", fold, len(tr), len(va), f"{n_params:,}", device, f", amp {dt}" if dt else "")

    # resume state
    history: list[dict[str, Any]] = []
    start_stage, start_epoch, best = 0, 0, math.inf
    ckpt_state: Optional[dict[str, Any]] = None
    last_path = out / "last.pt"
    if resume and last_path.exists():
        ckpt_state = load_checkpoint(last_path, map_location=device)
        if ckpt_state.get("complete"):
            log.info("fold %d already complete (last.pt); nothing to resume", fold)
            return pd.read_csv(out / "oof.csv")
        model.load_state_dict(ckpt_state["model"])
        start_stage, start_epoch = ckpt_state["stage_index"], ckpt_state["epoch_in_stage"] + 1
        best = ckpt_state["best"]
        history = ckpt_state["history"]
        log.info("fold %d: resuming %s at epoch %d", fold, stages[start_stage].name, start_epoch + 1)
    elif resume:
        log.info("fold %d: no last.pt, starting from scratch", fold)

    t0 = time.time() - (ckpt_state["elapsed_s"] if ckpt_state else 0.0)
    global_epoch = sum(s.epochs for s in stages[:start_stage]) + start_epoch
    for si in range(start_stage, len(stages)):
        st = stages[si]
        is_last_stage = si == len(stages) - 1
        tr_ds = experiment_dataset(cfg, cache, st.table, train=True, weights=sample_weights(cfg, st.table))
        gen = torch.Generator()
        tr_loader = make_loader(cfg, tr_ds, train=True, gen=gen)
        steps = len(tr_loader) if cfg.train.max_steps_per_epoch is None else min(len(tr_loader), cfg.train.max_steps_per_epoch)
        opt = torch.optim.AdamW(model.parameters(), lr=st.lr, weight_decay=cfg.train.weight_decay)
        sched = make_scheduler(opt, cfg.train.schedule, steps * st.epochs, cfg.train.warmup_frac, st.lr)
        ema = EMA(model, cfg.train.ema) if cfg.train.ema else None
        e0 = 0
        if ckpt_state is not None and si == start_stage:
            opt.load_state_dict(ckpt_state["optimizer"])
            sched.load_state_dict(ckpt_state["scheduler"])
            scaler.load_state_dict(ckpt_state["scaler"])
            if ema is not None and ckpt_state.get("ema") is not None:
                ema.shadow = ckpt_state["ema"]
            e0 = start_epoch
        if si > start_stage or ckpt_state is None:
            if si > 0:
                best = math.inf  # best.pt is the best epoch of the final stage
        for epoch in range(e0, st.epochs):
            seed_everything(_fold_seed(cfg, fold, global_epoch))
            gen.manual_seed(_fold_seed(cfg, fold, global_epoch))
            tr_ds.set_epoch(_fold_seed(cfg, fold, global_epoch))  # per_eeg random sub-windows of this epoch
            model.train()
            losses = []
            te = time.time()
            bar = tqdm(total=steps, desc=f"fold {fold} {st.name} epoch {epoch + 1}/{st.epochs}", leave=False, disable=not progress)
            for step, batch in enumerate(tr_loader):
                if step >= steps:
                    break
                batch = to_device(batch, device)
                if cfg.augment.mixup > 0 and np.random.rand() < cfg.augment.mixup:
                    batch = mixup(batch, cfg.augment.mixup_alpha)
                with torch.autocast(device_type=device.type, dtype=dt or torch.float32, enabled=dt is not None):
                    logits = model(batch)
                loss = loss_fn(logits.float(), batch["target"], batch["weight"])
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"fold {fold} {st.name} epoch {epoch + 1} step {step}: loss is {loss.item()}")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.train.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                if ema is not None:
                    ema.update(model)
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            bar.close()
            eval_model = _with_weights(model, ema.shadow) if ema is not None else model
            probs = predict_loader(eval_model, va_loader, device, list(cache.channels), cfg.train.amp, progress=False)
            val_kl = kl_score(va_targets, probs)
            val_kl_hi = kl_score(va_targets[hi_mask], probs[hi_mask]) if hi_mask.any() else float("nan")
            row = {
                "epoch": global_epoch + 1,
                "stage": st.name,
                "epoch_in_stage": epoch + 1,
                "lr": float(sched.get_last_lr()[0]),
                "train_loss": float(np.mean(losses)) if losses else float("nan"),
                "val_kl": val_kl,
                "val_kl_min_votes": val_kl_hi,
                "time_s": time.time() - te,
            }
            history.append(row)
            improved = is_last_stage and val_kl < best
            if improved:
                best = val_kl
                save_checkpoint(out / "best.pt", {
                    "model": eval_model.state_dict(), "config": to_dict(cfg), "epoch": global_epoch + 1,
                    "stage": st.name, "score": val_kl, "fold": fold, "n_params": n_params, "classes": classes,
                    "channels": list(cache.channels), "fs": float(cache.fs), "n_times": n_times,
                })
            log.info(
                "fold %d %s epoch %d/%d: train loss %.4f, val KL %.4f (n_votes>=10: %.4f)%s",
                fold, st.name, epoch + 1, st.epochs, row["train_loss"], val_kl, val_kl_hi, "  *best*" if improved else "",
            )
            save_checkpoint(last_path, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "ema": ema.shadow if ema is not None else None,
                "config": to_dict(cfg), "epoch": global_epoch + 1, "stage": st.name, "stage_index": si,
                "epoch_in_stage": epoch, "score": val_kl, "best": best, "fold": fold, "history": history,
                "n_params": n_params, "elapsed_s": time.time() - t0, "complete": False,
            })
            atomic_write_csv(out / "history.csv", pd.DataFrame(history))
            global_epoch += 1
            if on_epoch is not None:
                on_epoch(global_epoch, val_kl)
        ckpt_state = None

    # OOF with the best weights
    best_ckpt = load_checkpoint(out / "best.pt", map_location=device)
    model.load_state_dict(best_ckpt["model"])
    probs = predict_loader(
        model, va_loader, device, list(cache.channels), cfg.train.amp, tta_flip=cfg.tta.hemisphere_flip,
        offsets_s=cfg.tta.offsets_s, progress=progress, desc=f"fold {fold} oof",
    )
    oof = oof_frame(va, probs, classes, fold)
    atomic_write_csv(out / "oof.csv", oof)
    elapsed = time.time() - t0
    atomic_write_json(out / "fold.json", {"fold": fold, "best_score": best_ckpt["score"], "best_epoch": best_ckpt["epoch"], "train_time_s": elapsed, "n_params": n_params})
    last = load_checkpoint(last_path, map_location="cpu")
    last["complete"] = True
    save_checkpoint(last_path, last)
    plot_history(pd.DataFrame(history), out / "curve.png", title=f"{cfg.name} fold {fold}")
    log.info("fold %d done in %.0f s: best val KL %.4f (epoch %d)", fold, elapsed, best_ckpt["score"], best_ckpt["epoch"])
    return oof


def _with_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    m = copy.deepcopy(model)
    m.load_state_dict(state)
    return m
