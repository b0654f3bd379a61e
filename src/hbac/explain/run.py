"""`python -m hbac explain EXPERIMENT`: every explanation of one trained fold into `outputs/<experiment>/explain/`.

Rows explained: the fold's validation rows from `oof.csv` (default); with `data_dir`, every
labelled row of another data folder preprocessed as the experiment was (e.g. the real HMS
files); with `edf`, the windows of one EDF recording (CHB-MIT models, unlabelled).

Writes: summary_*.png (figures.py), optimal.csv + optimal_<kind>_<class>_<rank>.png,
gradcam_profile.png + gradcam.npz (+ gradcam2d_<class>.png for 2D models), actmax_<class>.png,
deconv_<class>.png, importance.png + importance.csv (feature baseline), explain.json.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from hbac.data.augment import hemisphere_flip
from hbac.data.dataset import cache_flip_perms, model_extras
from hbac.datasets.edf_montage import sliding_windows
from hbac.explain.actmax import band_limit, input_shapes, maximise
from hbac.explain.common import (
    Fold,
    cache_rows,
    default_fold,
    fold_oof,
    load_fold,
    make_batch,
    open_fold_cache,
    predict,
)
from hbac.explain.deconv import plot_filter_maps, reverse_maps
from hbac.explain.draw import plot_sample
from hbac.explain.figures import summary_figures
from hbac.explain.gradcam import (
    cam_1d,
    chain_cam,
    image_module,
    model_image,
    plot_cam_1d,
    plot_cam_2d,
    region_maps,
    target_layers,
    time_cam,
)
from hbac.explain.importance import permutation_importance, plot_importance
from hbac.explain.optimal import optimal_samples, top_predicted
from hbac.features.baseline import predict_features
from hbac.features.extract import extract
from hbac.inference.detect import read_preprocessed, recording_cache
from hbac.io import atomic_path, atomic_write_csv, atomic_write_json
from hbac.plotting import save_png, subplots

log = logging.getLogger(__name__)

PROFILE_ROWS = 64  # rows per class averaged in the Grad-CAM time profile
CHUNK = 16  # rows per attribution batch


def _oof_like(f: Fold, table: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """An OOF-shaped table (sample_id, fold, n_votes, <class>_vote, <class>_pred) for rows predicted now."""
    out = table[["sample_id"]].copy()
    out["fold"] = f.fold
    out["n_votes"] = table["n_votes"].to_numpy() if "n_votes" in table else 1
    for i, c in enumerate(f.classes):
        out[f"{c}_vote"] = table[f"{c}_vote"].to_numpy()
    for i, c in enumerate(f.classes):
        out[f"{c}_pred"] = probs[:, i]
    return out.reset_index(drop=True)


def predict_rows(f: Fold, table: pd.DataFrame) -> np.ndarray:
    """Probabilities (N, K) of the fold's model on cache rows, with the experiment's hemisphere-flip TTA."""
    out = []
    perms = cache_flip_perms(f.cache, model_extras(f.cfg)) if f.cfg.tta.hemisphere_flip else {}
    for i in range(0, len(table), CHUNK):
        b = make_batch(f, table.iloc[i : i + CHUNK])
        p = predict(f.model, b)
        if f.cfg.tta.hemisphere_flip:
            p = (p + predict(f.model, hemisphere_flip(b, perms, axis=1))) / 2
        out.append(p)
    return np.concatenate(out) if out else np.zeros((0, len(f.classes)))


def _cams(f: Fold, batch: dict[str, torch.Tensor], target: Any) -> tuple[Optional[np.ndarray], Any]:
    """(EEG-time CAM (B, T), 2D (img, map, tiles) or None) of the fold's model."""
    return time_cam(f.model, batch, target, f.n_times / f.fs)


def draw_optimal(f: Fold, oof: pd.DataFrame, table: pd.DataFrame, sel: pd.DataFrame, out: Path) -> list[Path]:
    """One figure per selected row: EEG with Grad-CAM shading above its spectrogram, votes and probabilities."""
    paths = []
    for _, s in sel.iterrows():
        i = int(s["row"])
        ci = f.classes.index(s["class"])
        batch = make_batch(f, table.iloc[i : i + 1])
        cam = _cams(f, batch, ci)[0] if f.is_torch else None
        votes = oof.loc[i, [f"{c}_vote" for c in f.classes]].to_numpy(np.float64)
        probs = oof.loc[i, [f"{c}_pred" for c in f.classes]].to_numpy(np.float64)
        title = (f"{s['kind']} #{s['rank']} for {s['class']}: sample {s['sample_id']} (true {s['true']}, "
                 f"p({s['class']}) = {s['prob']:.3f})")
        fig = plot_sample(batch["eeg"][0].cpu().numpy(), f.fs, f.channels, title, f.classes, votes, probs,
                          cam=None if cam is None else cam[0], cam_label=f"Grad-CAM for {s['class']}")
        paths.append(save_png(fig, out / f"optimal_{s['kind']}_{s['class']}_{s['rank']}.png"))
    return paths


def gradcam_chains(f: Fold, table: pd.DataFrame, sel: pd.DataFrame, out: Path) -> list[str]:
    """1D models: Grad-CAM and per-chain guided Grad-CAM of each class's first selected row → gradcam1d_<class>.png."""
    layers = target_layers(f.model)
    if "1d" not in layers:
        return []
    done = []
    for c, s in sel.groupby("class", sort=False):
        s = s.iloc[0]
        ci = f.classes.index(c)
        b = make_batch(f, table.iloc[int(s["row"]) : int(s["row"]) + 1])
        cam = cam_1d(f.model, b, ci, layers["1d"])
        chains = chain_cam(f.model, b, ci, f.channels, f.fs, layers["1d"])
        fig = plot_cam_1d(b["eeg"][0].cpu().numpy(), f.fs, f.channels, cam[0], (chains[0], chains[1][0]),
                          title=f"Grad-CAM for {c}: {s['kind']} #{s['rank']}, sample {s['sample_id']} (p = {s['prob']:.3f})")
        save_png(fig, out / f"gradcam1d_{c}.png")
        done.append(str(c))
    return done


def gradcam_profiles(f: Fold, oof: pd.DataFrame, table: pd.DataFrame, classes: Sequence[str], out: Path,
                     max_rows: int = PROFILE_ROWS) -> dict[str, Any]:
    """Mean Grad-CAM over time per true class (up to `max_rows` rows each), region × frequency × time maps for 2D; figures."""
    t = oof[[f"{c}_vote" for c in f.classes]].to_numpy()
    labelled = t.sum(axis=1) > 0
    true = np.where(labelled, t.argmax(axis=1), oof[[f"{c}_pred" for c in f.classes]].to_numpy().argmax(axis=1))
    prof, maps2d, peaks = {}, {}, {}
    fig, ax = subplots(figsize=(10, 4))
    for c in classes:
        ci = f.classes.index(c)
        rows = np.nonzero(true == ci)[0][:max_rows]
        if not len(rows):
            continue
        cams, twos = [], []
        for j in range(0, len(rows), CHUNK):
            b = make_batch(f, table.iloc[rows[j : j + CHUNK]])
            cam, two = _cams(f, b, ci)
            if cam is not None:
                cams.append(cam)
            if two is not None:
                twos.append(two)
        if cams:
            cam = np.concatenate(cams)
            prof[c] = cam.mean(axis=0)
            peaks[c] = (cam.argmax(axis=1) / f.fs).tolist()
            ax.plot(np.arange(cam.shape[1]) / f.fs, prof[c], label=f"{c} (n={len(rows)})")
        if twos:
            img, m2, tiles = twos[0][0], np.concatenate([x[1] for x in twos]), twos[0][2]
            for k, v in region_maps(m2.mean(axis=0), tiles).items():
                maps2d[f"{c}/{k}"] = v
            save_png(plot_cam_2d(img[0], m2[0], tiles, title=f"Grad-CAM for {c}: sample {oof['sample_id'].iloc[rows[0]]}"), out / f"gradcam2d_{c}.png")
    ax.set_xlabel("time in window (s)")
    ax.set_ylabel("mean Grad-CAM")
    ax.set_title(f"{f.exp_dir.name} fold {f.fold}: mean Grad-CAM over the window per true class", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, out / "gradcam_profile.png")
    with atomic_path(out / "gradcam.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{f"profile/{k}": v for k, v in prof.items()}, **{f"map2d/{k}": v for k, v in maps2d.items()})
    return {"peak_s": peaks}


def explain_actmax(f: Fold, template: dict[str, torch.Tensor], classes: Sequence[str], out: Path, steps: int) -> dict[str, Any]:
    """Activation maximisation per class, drawn like a real sample; returns start/end probabilities."""
    res = {}
    fmax = band_limit(f.cfg.data.eeg.bandpass, f.fs)
    eeg_std = float(template["eeg"].std()) if "eeg" in template else 20.0
    for c in classes:
        ci = f.classes.index(c)
        r = maximise(f.model, input_shapes(template), ci, f.fs, steps=steps, fmax_hz=fmax, eeg_std=eeg_std or 20.0)
        res[c] = {"p_start": float(r.p_start[ci]), "p_end": float(r.p_end[ci])}
        if "eeg" in r.inputs:
            fig = plot_sample(r.inputs["eeg"], f.fs, f.channels, f"activation maximisation for {c}: p({c}) {r.p_start[ci]:.3f} (noise) → {r.p_end[ci]:.3f}",
                              f.classes, None, r.p_end)
            save_png(fig, out / f"actmax_{c}.png")
    return res


def explain_deconv(f: Fold, oof: pd.DataFrame, table: pd.DataFrame, sel: pd.DataFrame, out: Path) -> list[str]:
    """Deconvolution and guided-backprop maps of the strongest first/last filters for each class's surest right row."""
    done = []
    for _, s in sel[(sel["kind"] == "best") & (sel["rank"] == 1)].iterrows():
        b = make_batch(f, table.iloc[int(s["row"]) : int(s["row"]) + 1])
        fmaps = reverse_maps(f.model, b)
        img = None
        if any(m.space == "image" for m in fmaps):
            with torch.no_grad():
                img = model_image(image_module(f.model), b)[0, 0].float().cpu().numpy()
        fig = plot_filter_maps(fmaps, 0, f.channels, f.fs, image=img, title=f"reverse convolution: surest {s['class']} sample {s['sample_id']}")
        save_png(fig, out / f"deconv_{s['class']}.png")
        done.append(str(s["class"]))
    return done


def explain_features(f: Fold, oof: pd.DataFrame, table: pd.DataFrame, out: Path, progress: bool) -> dict[str, Any]:
    """The feature baseline: permutation feature importance on the fold's validation rows."""
    X = extract(f.cache, table, progress=progress)
    t = oof[[f"{c}_vote" for c in f.classes]].to_numpy(np.float64)
    base, feats, groups = permutation_importance(f.ckpt["sklearn"], X, t, f.ckpt["feature_names"], progress=progress)
    atomic_write_csv(out / "importance.csv", feats)
    atomic_write_csv(out / "importance_families.csv", groups)
    save_png(plot_importance(feats, groups, base), out / "importance.png")
    return {"base_kl": base, "top_features": feats.head(10).to_dict("records"), "top_families": groups.head(10).to_dict("records")}


def _rows(f: Fold, exp_dir: Path, data_dir: Optional[str], edf: Optional[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(OOF-like table, matching cache rows, notes) of the rows to explain."""
    if edf is not None:
        x, names = read_preprocessed(Path(edf), f.cfg.data, f.fs)
        w = sliding_windows(f.cfg.data)
        f.cache = recording_cache(Path(edf), x, f.fs, names, f.classes, w.window_s, w.stride_s, dataset=f.cfg.data.dataset)
        table = f.cache.samples
        return _oof_like(f, table, predict_rows(f, table)), table, {"rows": "edf", "edf": str(edf)}
    open_fold_cache(f, data_dir)
    if data_dir is not None:
        table = f.cache.samples.reset_index(drop=True)
        probs = predict_rows(f, table) if f.is_torch else _feature_probs(f, table)
        return _oof_like(f, table, probs), table, {"rows": "data_dir", "data_dir": str(data_dir)}
    oof = fold_oof(exp_dir, f.fold)
    return oof, cache_rows(f.cache, oof["sample_id"].tolist()), {"rows": "oof"}


def _feature_probs(f: Fold, table: pd.DataFrame) -> np.ndarray:
    return predict_features(f.ckpt, f.cache, table, progress=False, source=str(f.exp_dir / f"fold{f.fold}" / "best.pt"))


def explain(exp_dir: Path, fold: Optional[int] = None, samples: int = 3, classes: Optional[Sequence[str]] = None,
            out_dir: Optional[Path] = None, data_dir: Optional[str] = None, edf: Optional[str] = None,
            actmax_steps: int = 200, profile_rows: int = PROFILE_ROWS, progress: bool = True) -> dict[str, Any]:
    """Run every method on one fold and write its figures; returns the explain.json summary."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise FileNotFoundError(f"experiment folder not found: {exp_dir}")
    fold = default_fold(exp_dir) if fold is None else fold
    f = load_fold(exp_dir, fold)
    out = Path(out_dir) if out_dir is not None else exp_dir / "explain"
    out.mkdir(parents=True, exist_ok=True)
    oof, table, notes = _rows(f, exp_dir, data_dir, edf)
    classes = list(classes or f.classes)
    sel = optimal_samples(oof, f.classes, samples, only=classes) if notes["rows"] != "edf" else _top_rows(oof, f.classes, classes, samples)
    atomic_write_csv(out / "optimal.csv", sel)
    summary: dict[str, Any] = {"experiment": exp_dir.name, "fold": fold, "model": f.cfg.model.kind, "n_rows": len(oof), **notes,
                               "classes": classes, "optimal": sel.to_dict("records")}
    labelled = oof[[f"{c}_vote" for c in f.classes]].to_numpy().sum(axis=1) > 0
    if labelled.any():
        for name, fig in summary_figures(oof[labelled], f.classes).items():
            save_png(fig, out / f"summary_{name}.png")
    if notes["rows"] == "oof" and f.is_torch and len(sel):
        rows = sel["row"].unique()
        again = predict_rows(f, table.iloc[rows])
        stored = oof.loc[rows, [f"{c}_pred" for c in f.classes]].to_numpy(np.float64)
        summary["oof_check_max_abs_diff"] = float(np.abs(again - stored).max())
        log.info("optimal samples re-predicted: max |p - OOF p| = %.2g", summary["oof_check_max_abs_diff"])
    if not f.is_torch:
        summary["importance"] = explain_features(f, oof, table, out, progress)
        draw_optimal(f, oof, table, sel, out)
    else:
        draw_optimal(f, oof, table, sel, out)
        summary["gradcam"] = gradcam_profiles(f, oof, table, classes, out, profile_rows)
        summary["gradcam"]["chains"] = gradcam_chains(f, table, sel, out)
        template = make_batch(f, table.iloc[:1])
        summary["actmax"] = explain_actmax(f, template, classes, out, actmax_steps)
        summary["deconv"] = explain_deconv(f, oof, table, sel, out)
    summary["files"] = sorted(p.name for p in out.glob("*.png"))
    atomic_write_json(out / "explain.json", summary)
    log.info("%s fold %d: %d figures in %s", exp_dir.name, fold, len(summary["files"]), out)
    return summary


def _top_rows(oof: pd.DataFrame, all_classes: Sequence[str], classes: Sequence[str], k: int) -> pd.DataFrame:
    """Unlabelled rows: per class the k windows with the highest predicted probability."""
    p = oof[[f"{c}_pred" for c in all_classes]].to_numpy()
    sel = top_predicted(p, all_classes, k)
    sel = sel[sel["class"].isin(classes)].reset_index(drop=True)
    sel["sample_id"] = oof["sample_id"].to_numpy()[sel["row"]]
    sel["true"] = "?"
    sel["pred"] = [all_classes[i] for i in p[sel["row"]].argmax(axis=1)]
    return sel
