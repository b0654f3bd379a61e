"""Summary figures of an OOF table: confusion matrices, per-class KL, reliability, KL by vote count.

Seizure tasks (two classes, 'seizure' among them, one vote per window) get their equivalents
where KL says little: ROC and precision-recall curves instead of per-class KL, and the
predicted-probability distributions of seizure and background windows instead of KL by votes.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.special import rel_entr
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from hbac.explain.common import event_class_of
from hbac.plotting import subplots
from hbac.tasks.kl import KL_EPS, oof_arrays

VOTE_BINS = [(1, 1), (2, 2), (3, 5), (6, 9), (10, 19), (20, 10**9)]


def is_seizure(classes: Sequence[str]) -> bool:
    """The classes are those of a task with events (`Task.event_class`, the seizure task): ROC/PR instead of KL."""
    return event_class_of(classes) is not None


def confusion(t: np.ndarray, p: np.ndarray, weighted: bool) -> np.ndarray:
    """(K, K) counts, true class by row, predicted argmax by column; `weighted`: each row spreads its votes over the true classes."""
    k = t.shape[1]
    onehot = np.eye(k)[p.argmax(axis=1)]
    true = t if weighted else np.eye(k)[t.argmax(axis=1)]
    return true.T @ onehot


def plot_confusion(t: np.ndarray, p: np.ndarray, classes: Sequence[str], weighted: bool) -> Any:
    """Row-normalised confusion matrix with counts in the cells."""
    m = confusion(t, p, weighted)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-12)
    fig, ax = subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({m[i, j]:.0f})", ha="center", va="center", fontsize=7,
                    color="w" if norm[i, j] > 0.5 else "k")
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)))
    ax.set_yticklabels(classes, fontsize=8)
    ax.set_xlabel("predicted (argmax)")
    ax.set_ylabel("true (vote-weighted)" if weighted else "true (vote argmax)")
    ax.set_title(f"confusion matrix, {'vote-weighted' if weighted else 'argmax'} (row-normalised; counts)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def kl_per_class(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(K,) each class's share of the mean KL: Σ_rows t_k log(t_k / p_k) / N; sums to the KL score."""
    return rel_entr(t, np.clip(p, KL_EPS, 1 - KL_EPS)).mean(axis=0)


def plot_kl_per_class(t: np.ndarray, p: np.ndarray, classes: Sequence[str]) -> Any:
    kl = kl_per_class(t, p)
    fig, ax = subplots(figsize=(7, 4))
    ax.bar(classes, kl, color="tab:purple")
    for i, v in enumerate(kl):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("KL contribution")
    ax.set_title(f"per-class KL contribution (sum = KL {kl.sum():.4f})", fontsize=9)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    return fig


def reliability(t: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Pooled over classes: per predicted-probability bin, mean prediction, mean vote share and count."""
    pf, tf = p.ravel(), t.ravel()
    b = np.minimum((pf * n_bins).astype(int), n_bins - 1)
    rows = [{"bin": i, "pred": pf[b == i].mean(), "vote": tf[b == i].mean(), "n": int((b == i).sum())} for i in range(n_bins) if (b == i).any()]
    return pd.DataFrame(rows)


def plot_reliability(t: np.ndarray, p: np.ndarray, classes: Sequence[str]) -> Any:
    """Mean vote share against mean predicted probability in 10 bins, pooled and per class."""
    fig, ax = subplots(figsize=(6, 5.5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect")
    for i, c in enumerate(classes):
        r = reliability(t[:, i : i + 1], p[:, i : i + 1])
        ax.plot(r.pred, r.vote, "-", lw=0.8, alpha=0.6, label=c)
    r = reliability(t, p)
    ax.plot(r.pred, r.vote, "o-", color="k", lw=1.8, label="all classes")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed vote share")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("reliability diagram", fontsize=9)
    fig.tight_layout()
    return fig


def kl_by_votes(t: np.ndarray, p: np.ndarray, n_votes: np.ndarray) -> pd.DataFrame:
    """Mean KL per row and row count for vote-count bins 1, 2, 3–5, 6–9, 10–19, 20+."""
    row_kl = rel_entr(t, np.clip(p, KL_EPS, 1 - KL_EPS)).sum(axis=1)
    rows = []
    for lo, hi in VOTE_BINS:
        m = (n_votes >= lo) & (n_votes <= hi)
        if m.any():
            rows.append({"votes": f"{lo}" if lo == hi else (f"{lo}+" if hi > 10**6 else f"{lo}-{hi}"), "kl": row_kl[m].mean(), "n": int(m.sum())})
    return pd.DataFrame(rows)


def plot_kl_by_votes(t: np.ndarray, p: np.ndarray, n_votes: np.ndarray) -> Any:
    d = kl_by_votes(t, p, n_votes)
    fig, ax = subplots(figsize=(7, 4))
    ax.bar(d.votes, d.kl, color="tab:green")
    for i, (v, n) in enumerate(zip(d.kl, d.n)):
        ax.text(i, v, f"{v:.3f}\nn={n}", ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("number of expert votes")
    ax.set_ylabel("mean KL per row")
    ax.set_title("KL by vote count", fontsize=9)
    fig.tight_layout()
    return fig


def plot_roc_pr(y: np.ndarray, s: np.ndarray) -> Any:
    """Seizure task: ROC and precision-recall curves of the seizure probability."""
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 4.5))
    if len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, s)
        prec, rec, _ = precision_recall_curve(y, s)
        a1.plot(fpr, tpr, color="tab:blue", label=f"AUROC {auc(fpr, tpr):.3f}")
        a2.plot(rec, prec, color="tab:orange", label=f"AUPRC {auc(rec, prec):.3f}")
        a2.axhline(y.mean(), color="grey", ls=":", label=f"prevalence {y.mean():.3f}")
    else:
        a1.text(0.5, 0.5, "one class only", ha="center")
    a1.plot([0, 1], [0, 1], "k--", lw=0.8)
    a1.set_xlabel("false positive rate")
    a1.set_ylabel("true positive rate")
    a2.set_xlabel("recall (sensitivity)")
    a2.set_ylabel("precision")
    for a, ttl in ((a1, "ROC (windows)"), (a2, "precision-recall (windows)")):
        a.set_title(ttl, fontsize=9)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_prob_hist(y: np.ndarray, s: np.ndarray) -> Any:
    """Seizure task: predicted seizure probability of seizure and background windows (log counts)."""
    fig, ax = subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 26)
    ax.hist(s[y == 0], bins=bins, alpha=0.6, label=f"background (n={int((y == 0).sum())})", color="tab:blue")
    ax.hist(s[y == 1], bins=bins, alpha=0.6, label=f"seizure (n={int((y == 1).sum())})", color="tab:red")
    ax.set_yscale("log")
    ax.set_xlabel("predicted seizure probability")
    ax.set_ylabel("windows")
    ax.legend(fontsize=8)
    ax.set_title("seizure probability by true label", fontsize=9)
    fig.tight_layout()
    return fig


def summary_figures(oof: pd.DataFrame, classes: Sequence[str]) -> dict[str, Any]:
    """{name: matplotlib Figure} of an OOF table, task-aware; the caller saves or embeds and closes them."""
    classes = list(classes)
    t, p = oof_arrays(oof, classes)
    figs = {"confusion_argmax": plot_confusion(t, p, classes, weighted=False),
            "confusion_votes": plot_confusion(t, p, classes, weighted=True)}
    if is_seizure(classes):
        k = classes.index(event_class_of(classes))
        y, s = (t[:, k] >= 0.5).astype(int), p[:, k]
        figs["roc_pr"] = plot_roc_pr(y, s)
        figs["reliability"] = plot_reliability(t, p, classes)
        figs["seizure_prob_hist"] = plot_prob_hist(y, s)
    else:
        figs["kl_per_class"] = plot_kl_per_class(t, p, classes)
        figs["reliability"] = plot_reliability(t, p, classes)
        if "n_votes" in oof.columns:
            figs["kl_by_votes"] = plot_kl_by_votes(t, p, oof["n_votes"].to_numpy())
    return figs
