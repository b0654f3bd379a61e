"""Drawing one window the way a reader looks at EEG: the montage traces above their spectrogram, with labels.

Used by every method that shows a sample (optimal samples, Grad-CAM overlays, activation
maximisation), so real and synthesised inputs look the same.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from matplotlib.artist import setp
from scipy import signal as sps

from hbac.plotting import figure
from hbac.signals.montage import chain_indices
from hbac.signals.montage import SPEC_REGIONS

SPEC_FMAX_HZ = 20.0  # the spectrogram panel shows 0–20 Hz, where HMS patterns and most seizure rhythms live


def chain_groups(channels: Sequence[str]) -> list[tuple[str, list[int]]]:
    """(name, channel indices) of the 4 double-banana chains (LL, RL, LP, RP), then any other channels as 'other'."""
    idx = chain_indices(channels)
    if idx is None:
        return [("all", list(range(len(channels))))]
    groups = [(name, list(map(int, ii))) for name, ii in zip(SPEC_REGIONS, idx)]
    used = {i for _, ii in groups for i in ii}
    rest = [i for i in range(len(channels)) if i not in used]
    return groups + ([("other", rest)] if rest else [])


def chain_spectrogram(eeg: np.ndarray, fs: float, channels: Sequence[str], fmax: float = SPEC_FMAX_HZ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray]]]:
    """Log10 power per chain (mean over its pairs): (freqs (F,) Hz, times (S,) s, [(chain, (F, S))])."""
    nper = int(min(eeg.shape[1], max(16, round(2 * fs))))
    f, t, p = sps.spectrogram(eeg.astype(np.float64), fs=fs, nperseg=nper, noverlap=nper * 3 // 4)
    keep = f <= min(fmax, fs / 2)
    logp = np.log10(p[:, keep] + 1e-6)
    return f[keep], t, [(name, logp[ii].mean(axis=0)) for name, ii in chain_groups(channels)[:4]]


def draw_eeg(ax: Any, eeg: np.ndarray, fs: float, channels: Sequence[str], cam: Optional[np.ndarray] = None,
             t0: float = 0.0, cam_label: str = "Grad-CAM") -> None:
    """Offset traces of every channel (C, T) on `ax`; `cam` (T,) in [0, 1] shaded behind them."""
    c, n = eeg.shape
    t = t0 + np.arange(n) / fs
    lo, hi = np.percentile(eeg, [1, 99], axis=1)
    spacing = float(np.median(hi - lo)) or 1.0
    if cam is not None:
        ax.imshow(np.asarray(cam, np.float32)[None], aspect="auto", cmap="Reds", alpha=0.45, vmin=0, vmax=1,
                  extent=(t[0], t[-1], -(c - 0.5) * spacing, 0.5 * spacing), origin="lower", zorder=0)
        ax.text(0.995, 1.01, f"shading: {cam_label}", transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="tab:red")
    for r in range(c):
        ax.plot(t, eeg[r] - r * spacing, lw=0.35, color="k", zorder=1)
    ax.set_yticks([-r * spacing for r in range(c)])
    ax.set_yticklabels(list(channels), fontsize=6)
    ax.set_ylim(-(c - 0.5) * spacing, 0.5 * spacing)
    ax.set_xlim(t[0], t[-1])
    ax.text(0.0, 1.01, f"spacing {spacing:.3g}", transform=ax.transAxes, fontsize=7, va="bottom")


def draw_spectrogram(ax: Any, eeg: np.ndarray, fs: float, channels: Sequence[str], t0: float = 0.0) -> None:
    """The chains' log-power spectrograms stacked (LL top … RP bottom), 0–20 Hz, low frequencies at the bottom of each band."""
    f, t, chains = chain_spectrogram(eeg, fs, channels)
    img = np.concatenate([p for _, p in reversed(chains)], axis=0)  # first chain on top with origin='lower'
    vlo, vhi = np.percentile(img, [2, 98])
    n = len(chains)
    ax.imshow(img, aspect="auto", origin="lower", cmap="magma", vmin=vlo, vmax=vhi,
              extent=(t0, t0 + eeg.shape[1] / fs, 0, n * (f[-1] if len(f) else 1)))
    band = f[-1] if len(f) else 1
    ax.set_yticks([(n - 1 - i + 0.5) * band for i in range(n)])
    ax.set_yticklabels([name for name, _ in chains], fontsize=7)
    for i in range(1, n):
        ax.axhline(i * band, color="w", lw=0.5)
    ax.set_ylabel(f"0–{band:.0f} Hz per chain", fontsize=7)


def draw_votes(ax: Any, classes: Sequence[str], votes: Optional[np.ndarray], probs: Optional[np.ndarray]) -> None:
    """Horizontal bars: true vote fractions and predicted probabilities per class."""
    y = np.arange(len(classes))
    if votes is not None:
        ax.barh(y + 0.2, votes, height=0.4, color="tab:gray", label="votes")
    if probs is not None:
        ax.barh(y - 0.2, probs, height=0.4, color="tab:blue", label="predicted")
    ax.set_yticks(y)
    ax.set_yticklabels(list(classes), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(fontsize=6, loc="lower right")
    ax.tick_params(labelsize=7)


def plot_sample(eeg: np.ndarray, fs: float, channels: Sequence[str], title: str = "", classes: Sequence[str] = (),
                votes: Optional[np.ndarray] = None, probs: Optional[np.ndarray] = None, cam: Optional[np.ndarray] = None,
                cam_label: str = "Grad-CAM") -> Any:
    """Figure: EEG montage (C, T) above its per-chain spectrogram, votes vs predicted probabilities at the right."""
    fig = figure(figsize=(13, 8))
    gs = fig.add_gridspec(2, 2, height_ratios=[3, 1.4], width_ratios=[5, 1], hspace=0.12, wspace=0.12)
    ax_eeg = fig.add_subplot(gs[0, 0])
    ax_spec = fig.add_subplot(gs[1, 0], sharex=ax_eeg)
    draw_eeg(ax_eeg, eeg, fs, channels, cam=cam, cam_label=cam_label)
    draw_spectrogram(ax_spec, eeg, fs, channels)
    ax_spec.set_xlabel("time in window (s)")
    setp(ax_eeg.get_xticklabels(), visible=False)
    if classes and (votes is not None or probs is not None):
        draw_votes(fig.add_subplot(gs[:, 1]), classes, votes, probs)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.07)
    return fig
