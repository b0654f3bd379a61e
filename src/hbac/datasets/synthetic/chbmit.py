"""Synthetic CHB-MIT data in the real layout: `out/chbNN/chbNN_MM.edf` + `chbNN-summary.txt`.

Signals are simulated per electrode (21 scalp electrodes) and referenced into the 23
bipolar channels of chb01 (incl. the duplicate T8-P8), so bipolar structure is real:
a focal discharge shows as phase reversals along a chain. Background: spatially
correlated 1/f noise, posterior alpha with a drifting envelope, eye blinks on the
frontopolar electrodes, temporal muscle bursts, short drowsy theta bursts and a little
60 Hz mains — none of them seizures. Seizures: 20–90 s rhythmic discharges whose
frequency evolves from ~7 Hz to ~3 Hz with growing amplitude and spatial spread from a
patient-specific focus, then post-ictal attenuation. Deterministic for a seed.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from hbac.datasets.base import SynthOptions
from hbac.datasets.chbmit import CHBMIT_FS
from hbac.datasets.edf import write_edf
from hbac.io import atomic_write_text

log = logging.getLogger(__name__)
DAY_S = 86400.0

# chb01's 23 channels, in file order
CHB01_CHANNELS = [
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1",
    "FP2-F4", "F4-C4", "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
    "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9", "FT9-FT10", "FT10-T8", "T8-P8",
]
# the 28-channel layout with '-' dummies used from chb11_02 on (a "Channels changed:" block)
CHB11_CHANNELS = [
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1", "-", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "-",
    "FZ-CZ", "CZ-PZ", "-", "FP2-F4", "F4-C4", "C4-P4", "P4-O2", "-", "FP2-F8", "F8-T8",
    "T8-P8", "P8-O2", "-", "P7-T7", "T7-FT9", "FT9-FT10", "FT10-T8", "T8-P8",
]
# approximate top-view positions (x: left→right, y: back→front), head radius ≈ 1
ELECTRODES = {
    "FP1": (-0.3, 0.95), "FP2": (0.3, 0.95), "F7": (-0.8, 0.6), "F3": (-0.4, 0.5), "FZ": (0.0, 0.5),
    "F4": (0.4, 0.5), "F8": (0.8, 0.6), "FT9": (-1.0, 0.3), "FT10": (1.0, 0.3), "T7": (-0.95, 0.0),
    "C3": (-0.5, 0.0), "CZ": (0.0, 0.0), "C4": (0.5, 0.0), "T8": (0.95, 0.0), "P7": (-0.8, -0.6),
    "P3": (-0.4, -0.5), "PZ": (0.0, -0.5), "P4": (0.4, -0.5), "P8": (0.8, -0.6), "O1": (-0.3, -0.95),
    "O2": (0.3, -0.95),
}
_NAMES = list(ELECTRODES)
_POS = np.array([ELECTRODES[n] for n in _NAMES])
_FOCI = ["T7", "F7", "T8", "F8", "C3", "C4", "P7", "P8", "F3", "F4"]  # per-patient seizure focus


def _colored_noise(rng: np.random.Generator, n_sig: int, n: int, fs: float, exponent: float = 1.0,
                   fmin: float = 0.3, fmax: float | None = None) -> np.ndarray:
    """(n_sig, n) unit-variance noise with power ∝ 1/f**exponent between fmin and fmax Hz."""
    f = np.fft.rfftfreq(n, 1.0 / fs)
    # the spectrum of white noise is complex Gaussian: draw it directly (no forward FFT)
    spec = rng.standard_normal((n_sig, len(f)), dtype=np.float32) + 1j * rng.standard_normal((n_sig, len(f)), dtype=np.float32)
    gain = np.where(f >= fmin, 1.0 / np.maximum(f, fmin) ** (exponent / 2), 0.0).astype(np.float32)
    if fmax is not None:
        gain[f > fmax] = 0.0
    x = np.fft.irfft(spec * gain, n=n, axis=1)
    return x / (x.std(axis=1, keepdims=True) + 1e-12)


def _weights(focus: str, sigma: float) -> np.ndarray:
    """(n_electrodes,) Gaussian spatial weights around an electrode."""
    d2 = ((_POS - np.array(ELECTRODES[focus])) ** 2).sum(axis=1)
    return np.exp(-d2 / (2 * sigma**2))


def _background(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """(n_electrodes, n) µV: correlated 1/f noise, posterior alpha, blinks, muscle, mains."""
    n_e = len(_NAMES)
    t = np.arange(n) / fs
    # spatially smooth 1/f sources + independent 1/f noise per electrode
    centres = rng.uniform(-1, 1, size=(6, 2))
    mix = np.exp(-((_POS[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * 0.5**2))  # (E, 6)
    x = 25.0 * mix @ _colored_noise(rng, 6, n, fs) / np.sqrt(mix.shape[1])
    x += 12.0 * _colored_noise(rng, n_e, n, fs)
    # posterior alpha with a slow positive envelope and drifting frequency
    env = np.abs(_colored_noise(rng, 1, n, fs, exponent=0.0, fmin=0.01, fmax=0.1))[0]
    freq = 10.0 + 0.5 * _colored_noise(rng, 1, n, fs, exponent=0.0, fmin=0.01, fmax=0.05)[0]
    alpha = np.sin(2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi))
    post = np.clip(-_POS[:, 1], 0, None) ** 1.5 + 0.05  # occipital ≈ 1, frontal ≈ 0
    x += 18.0 * post[:, None] * (env * alpha)[None]
    # eye blinks: bursts of 0.3 s positive bumps on FP1/FP2 (weaker on frontal electrodes)
    blink_w = np.clip(_POS[:, 1] - 0.3, 0, None) ** 2 / 0.65**2  # FP ≈ 1, F ≈ 0.2
    n_blinks = rng.poisson(n / fs / 8.0)
    for tb in rng.uniform(1, n / fs - 1, size=n_blinks):
        amp = rng.uniform(80, 220)
        i0, i1 = int((tb - 0.6) * fs), int((tb + 0.6) * fs)
        bump = amp * np.exp(-0.5 * ((t[i0:i1] - tb) / 0.12) ** 2)
        x[:, i0:i1] += blink_w[:, None] * bump[None]
    # muscle bursts on temporal electrodes: 1–4 s of 20–70 Hz noise
    temporal = np.array([1.0 if n_ in ("T7", "T8", "FT9", "FT10", "F7", "F8") else 0.05 for n_ in _NAMES])
    for _ in range(rng.poisson(n / fs / 60.0)):
        t0, dur = rng.uniform(0, n / fs - 4), rng.uniform(1, 4)
        i0, i1 = int(t0 * fs), int((t0 + dur) * fs)
        burst = _colored_noise(rng, n_e, i1 - i0, fs, exponent=0.0, fmin=20.0, fmax=70.0)
        x[:, i0:i1] += rng.uniform(15, 35) * temporal[:, None] * burst * np.hanning(i1 - i0)[None]
    # drowsy theta bursts: 2–6 s of diffuse 4–7 Hz (a seizure mimic, not a seizure)
    central = np.exp(-(_POS**2).sum(axis=1) / (2 * 0.6**2))
    for _ in range(rng.poisson(n / fs / 45.0)):
        t0, dur = rng.uniform(0, n / fs - 6), rng.uniform(2, 6)
        i0, i1 = int(t0 * fs), int((t0 + dur) * fs)
        wave = np.sin(2 * np.pi * rng.uniform(4, 7) * t[i0:i1] + rng.uniform(0, 2 * np.pi)) * np.hanning(i1 - i0)
        x[:, i0:i1] += rng.uniform(25, 55) * (central + 0.3 * rng.random(n_e))[:, None] * wave[None]
    # mains: common 60 Hz with small per-electrode differences
    x += (3.0 + rng.uniform(-1, 1, size=(n_e, 1))) * np.sin(2 * np.pi * 60.0 * t)[None]
    return x


def _add_seizure(x: np.ndarray, rng: np.random.Generator, fs: float, start_s: float, end_s: float, focus: str) -> None:
    """Add one evolving rhythmic discharge (in place) + post-ictal attenuation of the background."""
    i0, i1 = int(round(start_s * fs)), int(round(end_s * fs))
    m = i1 - i0
    u = np.linspace(0.0, 1.0, m)
    f0, f1 = rng.uniform(6.0, 8.0), rng.uniform(2.5, 4.0)
    freq = f0 + (f1 - f0) * u
    phase = 2 * np.pi * np.cumsum(freq) / fs
    amp = rng.uniform(50.0, 130.0) * np.clip(0.25 + 3.0 * u, 0, 1) * np.clip((1.0 - u) / 0.1, 0, 1)
    d = np.sqrt(((_POS - np.array(ELECTRODES[focus])) ** 2).sum(axis=1))
    w_early, w_late = _weights(focus, 0.35), _weights(focus, 0.8)
    lag = 0.8 * d  # radians: the discharge propagates away from the focus
    for e in range(x.shape[0]):
        w = w_early[e] + (w_late[e] - w_early[e]) * u
        ph = phase - lag[e]
        wave = np.sin(ph) + 0.45 * np.sin(2 * ph + 0.8) + 0.2 * np.sin(3 * ph + 1.6)  # sharp, spiky waves
        x[e, i0:i1] += amp * w * wave
    # post-ictal attenuation (30 s, recovering)
    j1 = min(x.shape[1], i1 + int(30 * fs))
    x[:, i1:j1] *= np.linspace(0.4, 1.0, j1 - i1)[None]


def simulate_electrodes(rng: np.random.Generator, n: int, fs: float, seizures: list[tuple[float, float]],
                        focus: str) -> tuple[np.ndarray, list[str]]:
    """(n_electrodes, n) µV of background plus the given seizures (s) from `focus`, and the electrode names.

    Names are the modern 10-20 ones in upper case (T7/T8/P7/P8, FP1, FZ, …; FT9/FT10 too).
    """
    x = _background(rng, n, fs)
    for s, e in seizures:
        _add_seizure(x, rng, fs, s, e, focus)
    return x, list(_NAMES)


def place_seizures(rng: np.random.Generator, k: int, length_s: float) -> list[tuple[int, int]]:
    """k non-overlapping 20–90 s seizures (whole seconds) inside a recording of `length_s` s (fewer if no room)."""
    return _place_seizures(rng, k, length_s)


FOCI = _FOCI


def _to_bipolar(x: np.ndarray, labels: list[str]) -> np.ndarray:
    """(n_electrodes, n) → (len(labels), n) bipolar channels; dummy labels ('-') are zeros."""
    idx = {n: i for i, n in enumerate(_NAMES)}
    out = np.zeros((len(labels), x.shape[1]), dtype=np.float64)
    for r, lab in enumerate(labels):
        if "-" in lab and lab != "-":
            a, b = lab.split("-")
            out[r] = x[idx[a]] - x[idx[b]]
    return out


def _place_seizures(rng: np.random.Generator, k: int, length_s: float, margin_s: float = 20.0,
                    sep_s: float = 120.0) -> list[tuple[int, int]]:
    """k non-overlapping seizures of 20–90 s (whole seconds) inside [margin, length - margin]."""
    room = length_s - 2 * margin_s
    while k > 0:
        dur = rng.integers(20, 91, size=k).astype(float)
        dur = np.minimum(dur, max(room, 0.0))
        free = room - dur.sum() - (k - 1) * sep_s
        if free >= 0 and dur.min() >= 20:
            cuts = np.sort(rng.uniform(0, free, size=k))
            starts = margin_s + cuts + np.concatenate([[0.0], np.cumsum(dur[:-1] + sep_s)])
            return [(int(np.floor(s)), int(np.floor(s)) + int(d)) for s, d in zip(starts, dur)]
        k -= 1
    return []


def _clock(t: float, pad: bool) -> str:
    """Seconds since midnight → 'HH:MM:SS' (hours past 24 kept, as in the real summaries)."""
    t = int(round(t))
    h, m, s = t // 3600, (t // 60) % 60, t % 60
    return f"{h:02d}:{m:02d}:{s:02d}" if pad else f"{h}:{m:02d}:{s:02d}"


def write_chbmit(out: Path, n_patients: int = 4, seed: int = 0, n_files: int = 3, file_s: float = 600.0) -> None:
    """Write `out/chbNN/chbNN_MM.edf` (23 bipolar channels, 256 Hz, ±800 µV) and `chbNN-summary.txt`.

    Most files hold 1–2 seizures; every patient has at least one seizure and (with ≥ 2 files)
    one seizure-free file. Patient 2 (chb03) switches to the 28-channel layout with '-'
    dummies for its last file ("Channels changed:"); odd patients use the "Seizure 1 Start
    Time" wording; patient 1's recording crosses midnight (end times like "24:05:00").
    Size: 11.8 kB per second of recording (defaults: 12 files × 600 s ≈ 85 MB, ~4 s).
    """
    out = Path(out)
    fs = CHBMIT_FS
    n = int(round(file_s * fs))
    base_day = datetime(2076, 11, 6)
    total_sz = 0
    for p in range(n_patients):
        rng = np.random.default_rng([seed, p])
        patient = f"chb{p + 1:02d}"
        focus = _FOCI[int(rng.integers(len(_FOCI)))]
        counts = rng.choice([0, 1, 2], size=n_files, p=[0.25, 0.45, 0.3])
        if n_files >= 2 and counts.min() > 0:  # at least one seizure-free file …
            counts[int(rng.integers(n_files))] = 0
        if counts.sum() == 0:  # … and at least one seizure per patient
            counts[int(rng.integers(n_files))] = 1
        numbered = p % 2 == 1
        lines = [f"Data Sampling Rate: {int(fs)} Hz", "*" * 25, "", "Channels in EDF Files:", "*" * 22]
        lines += [f"Channel {i + 1}: {c}" for i, c in enumerate(CHB01_CHANNELS)] + [""]
        # patient 1's first file crosses midnight (end "24:…", next start "00:…")
        t_clock = DAY_S - round(file_s / 2) if p == 1 else 9 * 3600.0 + 1800 * p + int(rng.integers(0, 1800))
        for k in range(n_files):
            rid = f"{patient}_{k + 1:02d}"
            labels = CHB11_CHANNELS if (p == 2 and k == n_files - 1 and n_files > 1) else CHB01_CHANNELS
            if labels is not CHB01_CHANNELS:
                lines += ["Channels changed:", "*" * 17] + [f"Channel {i + 1}: {c}" for i, c in enumerate(labels)] + [""]
            seizures = _place_seizures(rng, int(counts[k]), file_s)
            x = _background(rng, n, fs)
            for s, e in seizures:
                _add_seizure(x, rng, fs, s, e, focus)
            sig = np.clip(_to_bipolar(x, labels), -799.0, 799.0)
            start = base_day + timedelta(seconds=t_clock)
            write_edf(out / patient / f"{rid}.edf", sig, fs, labels, start)
            tod = t_clock % 86400
            lines += [f"File Name: {rid}.edf", f"File Start Time: {_clock(tod, True)}",
                      f"File End Time: {_clock(tod + file_s, False)}", f"Number of Seizures in File: {len(seizures)}"]
            for j, (s, e) in enumerate(seizures, start=1):
                tag = f"Seizure {j}" if numbered else "Seizure"
                lines += [f"{tag} Start Time: {s} seconds", f"{tag} End Time: {e} seconds"]
            lines.append("")
            total_sz += len(seizures)
            t_clock += file_s + int(rng.integers(3, 11))
        atomic_write_text(out / patient / f"{patient}-summary.txt", "\n".join(lines) + "\n")
    log.info("synthetic CHB-MIT: %d patients × %d files × %.0f s, %d seizures → %s", n_patients, n_files, file_s, total_sz, out)


def synth(out: Path, opts: SynthOptions) -> None:
    """`hbac synth chbmit`: `opts.n_patients` cases × `opts.n_files` files of `opts.file_s` s."""
    write_chbmit(out, n_patients=opts.n_patients, seed=opts.seed, n_files=opts.n_files, file_s=opts.file_s)
