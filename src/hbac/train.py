"""One fold's training loop (two-stage), checkpoints, resume, history; OOF and scores.

Determinism: every epoch reseeds python/numpy/torch from `seed + fold` and the epoch
index, so a run resumed from `last.pt` sees the same batches and augmentations as an
uninterrupted one and ends with the same weights (on a CPU).
"""
from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hbac.config import ExperimentConfig, save_config, to_dict
from hbac.data import WindowDataset, balanced_sampler, mixup, select_samples, vote_columns, worker_init
from hbac.io import atomic_path, atomic_write_csv, atomic_write_json
from hbac.predict import amp_dtype, device_auto, predict_loader, to_device

log = logging.getLogger(__name__)

ID_COLS = ["sample_id", "recording_id", "group", "start_s", "duration_s", "eeg_id", "label_id"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fold_seed(cfg: ExperimentConfig, fold: int, epoch: int) -> int:
    return (cfg.train.seed + fold) * 100_003 + epoch


# --------------------------------------------------------------------------- data for a fold


def experiment_table(cfg: ExperimentConfig):
    """(cache, selected sample table with a `fold` column) for an experiment."""
    from hbac.cache import open_cache
    from hbac.folds import assign_folds, load_or_make_folds

    cache = open_cache(cfg.data)
    table = cache.samples.copy()
    folds = load_or_make_folds(table, cfg.folds, cfg.data.dataset, root=Path(cfg.data.cache_root).parent / "folds")
    sel = select_samples(table, cfg.selection.strategy, cfg.selection.min_votes)
    sel["fold"] = assign_folds(sel, folds).to_numpy()
    if sel["fold"].isna().any():
        raise ValueError(f"{int(sel['fold'].isna().sum())} selected rows have no fold")
    sel["fold"] = sel["fold"].astype(int)
    return cache, sel, folds


def fold_split(cfg: ExperimentConfig, sel: pd.DataFrame, folds: pd.DataFrame, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation rows of a fold (time scheme: train only on earlier blocks)."""
    va = sel[sel.fold == fold]
    if cfg.folds.scheme == "time":
        from hbac.folds import time_train_mask

        allowed = set(folds.loc[time_train_mask(folds, fold), "sample_id"])
        tr = sel[(sel.fold != fold) & sel.sample_id.isin(allowed)]
    else:
        tr = sel[sel.fold != fold]
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"fold {fold}: {len(tr)} training rows, {len(va)} validation rows")
    return tr.reset_index(drop=True), va.reset_index(drop=True)


def _weights(cfg: ExperimentConfig, table: pd.DataFrame) -> np.ndarray:
    if not cfg.train.weight_by_votes:
        return np.ones(len(table), np.float32)
    w = table["n_votes"].to_numpy(np.float32).clip(1, 20)  # per_eeg sums can be huge: cap
    return w / w.mean()


def _loader(cfg: ExperimentConfig, ds: WindowDataset, train: bool, gen: Optional[torch.Generator] = None) -> DataLoader:
    sampler = None
    if train and cfg.train.sampler == "balanced":
        sampler = balanced_sampler(ds.table, gen)
    return DataLoader(
        ds,
        batch_size=cfg.train.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train and len(ds) > cfg.train.batch_size,
        num_workers=cfg.train.num_workers,
        worker_init_fn=worker_init,
        generator=gen,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


# --------------------------------------------------------------------------- optimisation


def make_scheduler(opt: torch.optim.Optimizer, schedule: str, total_steps: int, warmup_frac: float, lr: float):
    """Per-step LR schedule: one-cycle, or linear warm-up then cosine / constant."""
    total_steps = max(1, total_steps)
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=max(warmup_frac, 1e-3), anneal_strategy="cos")
    warm = int(total_steps * warmup_frac)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if schedule == "constant":
            return 1.0
        p = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


class EMA:
    """Exponential moving average of a model's floating-point state."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)


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


# --------------------------------------------------------------------------- one fold


def train_fold(cfg: ExperimentConfig, fold: int, resume: bool = False, data: Any = None, progress: bool = True) -> pd.DataFrame:
    """Train one fold; write fold{k}/best.pt, last.pt, history.csv, curve.png, oof.csv; return its OOF."""
    from hbac.models import build_model, count_parameters
    from hbac.losses import build_loss
    from hbac.metrics import kl_score

    cache, sel, folds = data if data is not None else experiment_table(cfg)
    tr, va = fold_split(cfg, sel, folds, fold)
    out = cfg.output_dir() / f"fold{fold}"
    out.mkdir(parents=True, exist_ok=True)
    device = device_auto()
    classes = list(cache.classes)
    vcols = vote_columns(va)
    use_spec = cfg.model.kind in ("2d", "multimodal") and "kaggle_spec" in cfg.model.inputs
    n_times = int(round(float(va["duration_s"].iloc[0]) * cache.fs))

    seed_everything(_fold_seed(cfg, fold, -1))
    model = build_model(cfg.model, n_classes=len(classes), channels=list(cache.channels), fs=float(cache.fs), n_times=n_times).to(device)
    n_params = count_parameters(model)
    if hasattr(model, "set_spec_augment"):  # masks on the in-model EEG spectrogram (training mode only)
        model.set_spec_augment(cfg.augment.time_mask, cfg.augment.freq_mask)
    loss_fn = build_loss(cfg.train)
    stages = _stages(cfg, tr)
    va_ds = WindowDataset(cache, va, use_kaggle_spec=use_spec)
    va_loader = _loader(cfg, va_ds, train=False)
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
        ckpt_state = torch.load(last_path, map_location=device, weights_only=False)
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
        tr_ds = WindowDataset(cache, st.table, use_kaggle_spec=use_spec, augment=cfg.augment, weights=_weights(cfg, st.table))
        gen = torch.Generator()
        tr_loader = _loader(cfg, tr_ds, train=True, gen=gen)
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
                _save(out / "best.pt", {
                    "model": eval_model.state_dict(), "config": to_dict(cfg), "epoch": global_epoch + 1,
                    "stage": st.name, "score": val_kl, "fold": fold, "n_params": n_params, "classes": classes,
                    "channels": list(cache.channels), "fs": float(cache.fs), "n_times": n_times,
                })
            log.info(
                "fold %d %s epoch %d/%d: train loss %.4f, val KL %.4f (n_votes>=10: %.4f)%s",
                fold, st.name, epoch + 1, st.epochs, row["train_loss"], val_kl, val_kl_hi, "  *best*" if improved else "",
            )
            _save(last_path, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "ema": ema.shadow if ema is not None else None,
                "config": to_dict(cfg), "epoch": global_epoch + 1, "stage": st.name, "stage_index": si,
                "epoch_in_stage": epoch, "score": val_kl, "best": best, "fold": fold, "history": history,
                "n_params": n_params, "elapsed_s": time.time() - t0, "complete": False,
                "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
            })
            atomic_write_csv(out / "history.csv", pd.DataFrame(history))
            global_epoch += 1
        ckpt_state = None

    # OOF with the best weights
    best_ckpt = torch.load(out / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(best_ckpt["model"])
    probs = predict_loader(model, va_loader, device, list(cache.channels), cfg.train.amp, tta_flip=cfg.tta.hemisphere_flip, progress=progress, desc=f"fold {fold} oof")
    oof = oof_frame(va, probs, classes, fold)
    atomic_write_csv(out / "oof.csv", oof)
    elapsed = time.time() - t0
    atomic_write_json(out / "fold.json", {"fold": fold, "best_score": best_ckpt["score"], "best_epoch": best_ckpt["epoch"], "train_time_s": elapsed, "n_params": n_params})
    last = torch.load(last_path, map_location="cpu", weights_only=False)
    last["complete"] = True
    _save(last_path, last)
    plot_history(pd.DataFrame(history), out / "curve.png", title=f"{cfg.name} fold {fold}")
    log.info("fold %d done in %.0f s: best val KL %.4f (epoch %d)", fold, elapsed, best_ckpt["score"], best_ckpt["epoch"])
    return oof


def _with_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    m = copy.deepcopy(model)
    m.load_state_dict(state)
    return m


def _save(path: Path, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def oof_frame(va: pd.DataFrame, probs: np.ndarray, classes: list[str], fold: int) -> pd.DataFrame:
    """OOF table: id columns, fold, n_votes, `<class>_vote` targets, `<class>_pred` probabilities."""
    ids = [c for c in ID_COLS + ["seizure_overlap", "rec_start_s"] if c in va.columns]
    oof = va[ids].copy()
    oof["fold"] = fold
    oof["n_votes"] = va["n_votes"].to_numpy()
    for i, c in enumerate(classes):
        oof[f"{c}_vote"] = va[f"{c}_vote"].to_numpy()
    for i, c in enumerate(classes):
        oof[f"{c}_pred"] = probs[:, i]
    return oof


def plot_history(hist: pd.DataFrame, path: Path, title: str = "") -> None:
    """Learning curve: train loss and validation KL (all rows, n_votes ≥ 10) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(hist.epoch, hist.train_loss, "o-", label="train loss")
    ax.plot(hist.epoch, hist.val_kl, "s-", label="val KL")
    if hist.val_kl_min_votes.notna().any():
        ax.plot(hist.epoch, hist.val_kl_min_votes, "^--", label="val KL (n_votes ≥ 10)")
    for s in hist.stage.unique()[1:]:
        ax.axvline(hist.epoch[hist.stage == s].min() - 0.5, color="grey", ls=":", label=f"{s} starts")
    ax.set_xlabel("epoch")
    ax.set_ylabel("KL divergence")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- an experiment


def train_experiment(cfg: ExperimentConfig, folds: Optional[list[int]] = None, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the given folds (default all) and (re)write oof.csv and scores.json from every finished fold."""
    out = cfg.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    _check_config(cfg, out, resume)
    save_config(cfg, out / "config.yaml")
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("hbac").addHandler(handler)
    try:
        if cfg.model.kind == "features":
            from hbac.features import train_features_fold as fold_fn
        else:
            fold_fn = train_fold
        data = experiment_table(cfg)
        todo = folds if folds is not None else list(range(cfg.folds.n_folds))
        for k in todo:
            if not 0 <= k < cfg.folds.n_folds:
                raise ValueError(f"--fold {k} is out of range: the config has n_folds {cfg.folds.n_folds}")
            fold_fn(cfg, k, resume=resume, data=data, progress=progress)
        return collect_oof(cfg)
    finally:
        logging.getLogger("hbac").removeHandler(handler)
        handler.close()


def _check_config(cfg: ExperimentConfig, out: Path, resume: bool) -> None:
    """Refuse to mix folds trained with different settings in one output folder."""
    from hbac.config import load_config

    old_path = out / "config.yaml"
    if not old_path.exists():
        return
    old = to_dict(load_config(old_path))
    new = to_dict(cfg)
    keys = [k for k in new if k not in ("output_root",) and old.get(k) != new.get(k)]
    if not keys:
        return
    trained = [p.parent.name for p in out.glob("fold*/best.pt")]
    if trained:
        msg = f"{out}: config differs from the one its trained folds ({', '.join(sorted(trained))}) used, in {keys}"
        if resume:
            raise ValueError(msg + "; --resume needs the same config")
        log.warning(msg + "; folds trained now will not match the others (rename the experiment to keep both)")


def collect_oof(cfg: ExperimentConfig) -> dict[str, Any]:
    """Concatenate fold{k}/oof.csv into oof.csv and write scores.json (missing folds listed)."""
    from hbac.metrics import score_oof

    out = cfg.output_dir()
    parts, missing, fold_info = [], [], {}
    for k in range(cfg.folds.n_folds):
        p = out / f"fold{k}" / "oof.csv"
        if p.exists():
            parts.append(pd.read_csv(p))
            fj = out / f"fold{k}" / "fold.json"
            if fj.exists():
                import json

                fold_info[k] = json.loads(fj.read_text())
        else:
            missing.append(k)
    if not parts:
        return {"cv": None, "missing_folds": missing}
    oof = pd.concat(parts, ignore_index=True)
    atomic_write_csv(out / "oof.csv", oof)
    s = score_oof(oof)
    scores: dict[str, Any] = {
        "task": cfg.data.dataset,
        "metric": "kl",
        "cv": s["kl"],
        "cv_min_votes": s["kl_min_votes"],
        "n_rows": s["n_rows"],
        "folds": {
            str(k): {"kl": s.get(f"fold{k}_kl"), "kl_min_votes": s.get(f"fold{k}_kl_min_votes"), **fold_info.get(k, {})}
            for k in range(cfg.folds.n_folds)
            if k not in missing
        },
        "missing_folds": missing,
        "model": cfg.model.kind,
        "backbone": cfg.model.backbone if cfg.model.kind in ("2d", "multimodal") else cfg.model.kind,
        "inputs": cfg.model.inputs if cfg.model.kind in ("2d", "multimodal") else ["eeg"],
        "n_params": max((v.get("n_params", 0) for v in fold_info.values()), default=0),
        "train_time_s": float(sum(v.get("train_time_s", 0.0) for v in fold_info.values())),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if cfg.data.dataset == "chbmit":
        from hbac.events import seizure_scores

        scores["seizure"] = seizure_scores(oof, find_best=True)  # best_threshold: the default of `detect`
    atomic_write_json(out / "scores.json", scores)
    if missing:
        log.warning("%s: folds %s not trained yet; CV covers %d rows", cfg.name, missing, len(oof))
    log.info("%s: CV KL %.4f (n_votes >= 10: %.4f) over %d rows", cfg.name, scores["cv"], scores["cv_min_votes"], len(oof))
    return scores
