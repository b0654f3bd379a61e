"""Synthetic HMS data in the exact competition layout, with learnable class patterns.

`write_hms(out, n_eegs, seed, n_test)` writes `train.csv`, `train_eegs/`, `train_spectrograms/`,
`test.csv`, `test_eegs/`, `test_spectrograms/` and `sample_submission.csv` with the real
column names, column order, dtypes and parquet layout (pandas-written arrow tables, one row
group, snappy, NaN stored as null).

How one training EEG is made:

* a long synthetic *session* (≥ 600 s) of 19 scalp channels + EKG at 200 Hz: 1/f background
  (spatially correlated), posterior alpha, polymorphic delta, eye blinks, muscle bursts, a DC
  offset and drift, an EKG heartbeat; a few NaN stretches in some sessions;
* the EEG file is a 50 s … ~3 min chunk of the session starting at `P ≥ 275` s; the Kaggle
  spectrogram is computed from the whole session with the Kaggle recipe (per region LL, RL,
  LP, RP: mean power of its 4 bipolar pairs, 800-sample Hann window, 1024-point FFT, bins
  0.59…19.92 Hz, 2 s step, rows at session times 1, 3, 5 … s), so the spectrogram window of
  a label is centred on its 50 s EEG window exactly as in the real data
  (`spectrogram_label_offset_seconds = eeg_label_offset_seconds + P - 275`);
* the EEG is split into one or two class *segments*; each class adds its signature over its
  segment (seizure: evolving ~3 Hz spike-wave, widespread; LPD: ~1 Hz sharp discharges on one
  hemisphere; GPD: 1–2.5 Hz discharges everywhere; LRDA: 1.2–2.5 Hz rhythmic delta on one
  hemisphere; GRDA: rhythmic delta everywhere; other: nothing), at a moderate, per-segment
  random strength relative to a per-patient background amplitude;
* labelled windows (whole even-second offsets) are placed so that their central 10 s lies in
  one segment; their votes come from an idealised expert panel that sees the class and the
  signature strength: high-vote rows (10–25 votes) are independent votes around the true
  class, low-vote rows (1–6 votes, mostly 3) are one noisier impression shared by the votes,
  optionally biased towards "other" (`low_vote_other`), so low-vote rows are more often wrong and
  differently distributed (the reason two-stage training helps).

The spectrogram scale `SPEC_SCALE` was calibrated on the real EEG ↔ spectrogram pairs of
`shared/data/hms` (log-power correlation 0.93–0.97 at the matching lag, ratio 1.86e-5).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import butter, oaconvolve, sosfiltfilt
from tqdm.auto import tqdm

from hbac.datasets.base import SynthOptions
from hbac.datasets.hms import (
    HMS_CLASSES,
    HMS_CONSENSUS,
    HMS_FS,
    HMS_VOTE_COLS,
    SPEC_COLUMNS,
)
from hbac.io import atomic_path, atomic_write_csv
from hbac.procs import one_blas_thread
from hbac.signals.montage import BANANA_CHAINS, HMS_EEG_CHANNELS, SPEC_REGIONS

log = logging.getLogger(__name__)

FS = int(HMS_FS)
SPEC_SCALE = 1.86e-5  # |rfft|² of a Hann-windowed µV segment → Kaggle spectrogram units
SPEC_NPERSEG = 800  # 4 s
SPEC_NFFT = 1024  # bin width 0.1953 Hz: bins 3 … 102 are 0.59 … 19.92 Hz
SPEC_HOP = 400  # 2 s
SPEC_LEAD_S = 275  # the EEG window starts 275 s after its spectrogram window (real data)

N_SCALP = 19  # HMS_EEG_CHANNELS[:19] are scalp electrodes, [19] is EKG
K = len(HMS_CLASSES)
SEIZURE, LPD, GPD, LRDA, GRDA, OTHER = range(K)
CLASS_PRIOR = np.array([0.20, 0.15, 0.16, 0.16, 0.15, 0.18])  # close to the real consensus mix

# Which classes an expert confuses a true class with (rows: true class; diagonal unused).
_NEIGHBOURS = np.array(
    [  # seiz  lpd   gpd   lrda  grda  other
        [0.00, 0.35, 0.20, 0.20, 0.10, 0.15],  # seizure
        [0.25, 0.00, 0.30, 0.30, 0.00, 0.15],  # lpd
        [0.20, 0.35, 0.00, 0.05, 0.25, 0.15],  # gpd
        [0.10, 0.30, 0.05, 0.00, 0.35, 0.20],  # lrda
        [0.05, 0.05, 0.30, 0.35, 0.00, 0.25],  # grda
        [0.10, 0.15, 0.10, 0.30, 0.35, 0.00],  # other
    ]
)
CONFUSION = _NEIGHBOURS / _NEIGHBOURS.sum(axis=1, keepdims=True)

# Signature RMS per unit strength relative to the background RMS, both in the double-banana
# montage at 0.5–20 Hz (per-window strength is 0.35–1, so the SNR spans about 1–4): strong
# enough that the tiny CPU models of the demo and the tests learn it in a few epochs.
SNR = np.array([3.0, 3.0, 2.75, 2.5, 2.5, 0.0])

# Electrode geometry: side (-1 left, 0 midline, +1 right), antero-posterior row (0 Fp … 4 O),
# lateral (temporal chain) flag. Order = HMS_EEG_CHANNELS[:19].
_SIDE = np.array([-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
_AP = np.array([0, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 0, 1, 2, 3, 1, 2, 3, 4])
_LATERAL = np.array([0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
_FRONTAL = np.array([1.0, 0.85, 0.65, 0.5, 0.4])  # generalised patterns: frontal predominance



def _bipolar_matrix() -> np.ndarray:
    """(16, 19) float32: double banana (chains LL, RL, LP, RP) from the scalp electrodes.

    Same matrix as `hbac.signals.montage_matrix("double_banana", …)`, built here so that writing
    synthetic data does not import torch (which `hbac.signals` does).
    """
    m = np.zeros((16, N_SCALP), dtype=np.float32)
    pairs = [p for chain in BANANA_CHAINS.values() for p in chain]
    for r, (a, b) in enumerate(pairs):
        m[r, HMS_EEG_CHANNELS.index(a)] = 1.0
        m[r, HMS_EEG_CHANNELS.index(b)] = -1.0
    return m


_BIPOLAR = _bipolar_matrix()
_BAND_SOS = butter(4, [0.5, 20.0], btype="bandpass", fs=FS, output="sos")  # for SNR measurements


@dataclass
class _Patient:
    """Traits shared by all recordings of one synthetic patient."""

    sigma: float  # background standard deviation, µV
    alpha_hz: float
    side: int  # hemisphere of lateralised patterns (-1 left, +1 right)
    favourite: int  # class this patient's EEGs lean towards


@dataclass
class _Window:
    offset: int  # eeg_label_offset_seconds (even)
    cls: int  # true class
    strength: float  # signature strength in [0, 1] seen by the experts


@dataclass
class _EEGPlan:
    length_s: int  # EEG file length (even, ≥ 50)
    lead_s: int  # P: position of the EEG start in the session (≥ 275)
    spec_len_s: int  # spectrogram length (even)
    segments: list[tuple[int, int, int, float]] = field(default_factory=list)  # (start_s, end_s, class, strength), session time
    windows: list[_Window] = field(default_factory=list)


# ----------------------------------------------------------------------------- public API


def write_hms(
    out: Path, n_eegs: int = 60, seed: int = 0, n_test: int = 4, workers: Optional[int] = None, low_vote_other: float = 0.0
) -> None:
    """Write a synthetic HMS dataset (real layout) with `n_eegs` train EEGs and `n_test` test EEGs to `out`.

    The same seed gives the same bytes; `workers` (default: up to 2 processes for ≥ 8 EEGs) does not
    change the output. `low_vote_other` (0–1) biases low-vote raters towards "other" (see `_votes`).
    """
    d = _design(n_eegs, seed, n_test, low_vote_other)
    out = Path(out)
    for sub in ("train_eegs", "train_spectrograms", "test_eegs", "test_spectrograms"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    jobs = [(out / "train_eegs" / f"{e}.parquet", out / "train_spectrograms" / f"{s}.parquet", np.int64, p, pat, (seed, 3, i))
            for i, (e, s, p, pat) in enumerate(zip(d.train_eeg_ids, d.train_spec_ids, d.train_plans, d.train_patients))]
    jobs += [(out / "test_eegs" / f"{e}.parquet", out / "test_spectrograms" / f"{s}.parquet", np.int16, p, pat, (seed, 4, j))
             for j, (e, s, p, pat) in enumerate(zip(d.test.eeg_id, d.test.spectrogram_id, d.test_plans, d.test_patients))]
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(jobs) >= 8 else 1
    methods = mp.get_all_start_methods()
    with one_blas_thread():  # the (16, 19) @ (19, n) montage products gain nothing from BLAS threads; forked workers inherit it
        if workers > 1 and "fork" in methods:
            # fork: the workers only run numpy/scipy/pyarrow; each job has its own seeded stream
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
                list(tqdm(ex.map(_write_recording, jobs, chunksize=2), total=len(jobs), desc="synthetic HMS", leave=False, disable=None))
        else:
            for job in tqdm(jobs, desc="synthetic HMS", leave=False, disable=None):
                _write_recording(job)
    sub = pd.DataFrame({"eeg_id": d.test.eeg_id.to_numpy(), **{c: np.full(len(d.test), 1.0 / K) for c in HMS_VOTE_COLS}})
    atomic_write_csv(out / "test.csv", d.test)
    atomic_write_csv(out / "sample_submission.csv", sub)
    atomic_write_csv(out / "train.csv", d.train)  # last: a crashed run never looks complete
    log.info(
        "synthetic HMS: %d train EEGs, %d patients, %d labelled windows (%s), %d test EEGs → %s",
        n_eegs, d.train.patient_id.nunique(), len(d.train), d.train.expert_consensus.value_counts().to_dict(), n_test, out,
    )


def hms_truth(n_eegs: int = 60, seed: int = 0, n_test: int = 4, low_vote_other: float = 0.0) -> pd.DataFrame:
    """The hidden truth of `write_hms(…, n_eegs, seed, n_test)`'s train.csv, row for row (no files written).

    Columns: label_id, eeg_id, patient_id, true_class (name in HMS_CLASSES), strength (0–1, how
    clearly the window shows its pattern), high_votes (bool: drawn as a 10+ vote row).
    """
    d = _design(n_eegs, seed, n_test, low_vote_other)
    return d.truth


def hms_train_table(n_eegs: int = 60, seed: int = 0, n_test: int = 4, low_vote_other: float = 0.0) -> pd.DataFrame:
    """`write_hms(…, n_eegs, seed, n_test, low_vote_other)`'s train.csv, row for row (no files written).

    The recordings do not depend on `low_vote_other` (only the votes do): a biased set is the unbiased
    set's EEG and spectrogram files with this table as its train.csv.
    """
    return _design(n_eegs, seed, n_test, low_vote_other).train


@dataclass
class _Design:
    """Everything about a synthetic dataset except the signals."""

    train: pd.DataFrame
    test: pd.DataFrame
    truth: pd.DataFrame
    train_plans: list
    train_patients: list
    train_eeg_ids: np.ndarray
    train_spec_ids: np.ndarray
    test_plans: list
    test_patients: list


def _design(n_eegs: int, seed: int, n_test: int, low_vote_other: float = 0.0) -> _Design:
    """Ids, patients, plans and votes of a synthetic dataset (cheap: no signal is made)."""
    if n_eegs < 1:
        raise ValueError(f"n_eegs must be ≥ 1, got {n_eegs}")
    if n_test < 0:
        raise ValueError(f"n_test must be ≥ 0, got {n_test}")
    rng = np.random.default_rng(seed)
    n_patients = max(min(n_eegs, 5), int(round(n_eegs / 2.5)))
    patient_ids = _unique_ints(rng, n_patients + n_test, 56, 65_536)
    eeg_ids = _unique_ints(rng, n_eegs + n_test, 500_000, 4_294_967_296)
    spec_ids = _unique_ints(rng, n_eegs + n_test, 300_000, 2_147_483_648)
    patients = [
        _Patient(
            sigma=float(rng.uniform(12.0, 32.0)),
            alpha_hz=float(rng.uniform(8.0, 11.5)),
            side=int(rng.choice([-1, 1])),
            favourite=int(rng.choice(K, p=CLASS_PRIOR)),
        )
        for _ in range(n_patients + n_test)
    ]
    # every patient gets at least one EEG, the rest at random (some patients get many)
    owner = np.concatenate([np.arange(n_patients), rng.integers(0, n_patients, max(0, n_eegs - n_patients))])[:n_eegs]
    owner = rng.permutation(owner)

    rows, truth, plans = [], [], []
    for i in range(n_eegs):
        erng = np.random.default_rng([seed, 1, i])  # one stream per EEG: stable if n_eegs changes
        pat = patients[owner[i]]
        plan = _plan_train_eeg(erng, pat)
        votes, high = _votes(erng, plan.windows, low_vote_other)
        plans.append(plan)
        for sub, (w, v, h) in enumerate(zip(plan.windows, votes, high)):
            rows.append((eeg_ids[i], sub, float(w.offset), spec_ids[i], sub, float(w.offset + plan.lead_s - SPEC_LEAD_S), patient_ids[owner[i]], v))
            truth.append((HMS_CLASSES[w.cls], w.strength, h))
    label_ids = _unique_ints(rng, len(rows), 90_000, 4_294_967_296)
    votes = np.array([r[7] for r in rows], dtype=np.int64)
    train = pd.DataFrame(
        {
            "eeg_id": np.array([r[0] for r in rows], dtype=np.int64),
            "eeg_sub_id": np.array([r[1] for r in rows], dtype=np.int64),
            "eeg_label_offset_seconds": np.array([r[2] for r in rows], dtype=np.float64),
            "spectrogram_id": np.array([r[3] for r in rows], dtype=np.int64),
            "spectrogram_sub_id": np.array([r[4] for r in rows], dtype=np.int64),
            "spectrogram_label_offset_seconds": np.array([r[5] for r in rows], dtype=np.float64),
            "label_id": label_ids,
            "patient_id": np.array([r[6] for r in rows], dtype=np.int64),
            "expert_consensus": np.array(HMS_CONSENSUS, dtype=object)[votes.argmax(axis=1)],
            **{c: votes[:, k] for k, c in enumerate(HMS_VOTE_COLS)},
        }
    )
    truth_df = pd.DataFrame(
        {
            "label_id": label_ids,
            "eeg_id": train.eeg_id.to_numpy(),
            "patient_id": train.patient_id.to_numpy(),
            "true_class": [t[0] for t in truth],
            "strength": np.array([t[1] for t in truth], dtype=np.float64),
            "high_votes": np.array([t[2] for t in truth], dtype=bool),
        }
    )
    test_plans = [_plan_test_eeg(np.random.default_rng([seed, 2, j]), patients[n_patients + j]) for j in range(n_test)]
    test = pd.DataFrame(
        {"spectrogram_id": spec_ids[n_eegs:], "eeg_id": eeg_ids[n_eegs:], "patient_id": patient_ids[n_patients:]}
    ).astype("int64")
    return _Design(
        train=train,
        test=test,
        truth=truth_df,
        train_plans=plans,
        train_patients=[patients[o] for o in owner],
        train_eeg_ids=eeg_ids[:n_eegs],
        train_spec_ids=spec_ids[:n_eegs],
        test_plans=test_plans,
        test_patients=patients[n_patients:],
    )


def _write_recording(job: tuple) -> None:
    """Render one planned recording and write its EEG and spectrogram parquet files."""
    eeg_file, spec_file, time_dtype, plan, pat, stream = job
    eeg, spec = _render(np.random.default_rng(list(stream)), plan, pat)
    _write_eeg(eeg_file, eeg)
    _write_spec(spec_file, spec, time_dtype)  # the real test spectrogram has an int16 `time`


# ----------------------------------------------------------------------------- planning


def _unique_ints(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """n distinct random int64 in [lo, hi), in random order."""
    got = np.empty(0, dtype=np.int64)
    while len(got) < n:
        got = np.unique(np.concatenate([got, rng.integers(lo, hi, n - len(got) + 4, dtype=np.int64)]))
    return rng.permutation(got)[:n]


def _even(x: float) -> int:
    return int(2 * round(x / 2))


def _plan_train_eeg(rng: np.random.Generator, pat: _Patient) -> _EEGPlan:
    """Length, session position, class segments and labelled windows of one train EEG."""
    two = rng.random() < 0.3
    # lengths: 50 s up to 3 min, mostly short like the real files; two segments need ≥ 90 s
    length = 90 + 2 * int(rng.integers(0, 46)) if two else 50 + 2 * min(int(rng.exponential(15)), 65)
    lead = SPEC_LEAD_S + (0 if rng.random() < 0.6 else 2 * int(rng.integers(1, 100)))
    extra = 0 if rng.random() < 0.7 else 2 * int(rng.integers(1, 50))
    plan = _EEGPlan(length_s=length, lead_s=lead, spec_len_s=lead + length + SPEC_LEAD_S + extra)

    c0 = pat.favourite if rng.random() < 0.5 else int(rng.choice(K, p=CLASS_PRIOR))
    if two:
        split = 2 * int(rng.integers(16, length // 2 - 15))  # 32 … length - 32
        c1 = int(rng.choice(K, p=CONFUSION[c0]))
        bounds = [(0, split, c0), (split, length, c1)]
    else:
        bounds = [(0, length, c0)]
    before = int(rng.integers(0, 121))  # the pattern may go on outside the EEG file
    after = int(rng.integers(0, 121))
    for k, (a, b, c) in enumerate(bounds):
        strength = float(rng.uniform(0.35, 1.0)) if c != OTHER else float(rng.uniform(0.4, 1.0))
        sa = lead + a - (before if k == 0 else 0)
        sb = lead + b + (after if k == len(bounds) - 1 else 0)
        plan.segments.append((max(sa, 0), min(sb, plan.spec_len_s), c, strength))
        # offsets o (even) with window [o, o+50] in the EEG and centre o+25 in [a+5, b-5]
        lo, hi = max(0, a - 20), min(length - 50, b - 30)
        cands = np.arange(_even(lo + 1) if lo % 2 else lo, hi + 1, 2)
        if len(cands) == 0:
            continue
        n = min(len(cands), int(rng.integers(1, 9)))
        for o in np.sort(rng.choice(cands, n, replace=False)):
            plan.windows.append(_Window(int(o), c, strength))
    if not plan.windows:  # cannot happen with the bounds above; keep the EEG labelled anyway
        plan.windows.append(_Window(0, c0, plan.segments[0][3]))
    return plan


def _plan_test_eeg(rng: np.random.Generator, pat: _Patient) -> _EEGPlan:
    """A test EEG: exactly 50 s, its 600 s spectrogram centred on it (offset 0)."""
    plan = _EEGPlan(length_s=50, lead_s=SPEC_LEAD_S, spec_len_s=600)
    c = int(rng.choice(K, p=CLASS_PRIOR))
    plan.segments.append((SPEC_LEAD_S - int(rng.integers(0, 100)), SPEC_LEAD_S + 50 + int(rng.integers(0, 100)), c, float(rng.uniform(0.35, 1.0))))
    plan.windows.append(_Window(0, c, plan.segments[0][3]))
    return plan


# ----------------------------------------------------------------------------- votes


def _votes(rng: np.random.Generator, windows: list[_Window], low_vote_other: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(n_windows, 6) int64 vote counts from an idealised expert panel (see module docstring), (n_windows,) high-vote flags.

    `low_vote_other`: share of low-vote impressions that say "other" whatever the EEG shows, a
    rater bias that high-vote rows do not have (as in the real data): a model fitted on all rows
    then under-calls the patterns on high-vote rows until stage 2 retrains it on them.
    """
    high_eeg = rng.random() < 0.4
    base_high = int(rng.integers(10, 26))
    out = np.zeros((len(windows), K), dtype=np.int64)
    flags = np.zeros(len(windows), dtype=bool)
    impression: dict[tuple[int, float], int] = {}  # low-vote rows: one impression per segment
    for i, w in enumerate(windows):
        high = high_eeg if rng.random() < 0.85 else not high_eeg
        flags[i] = high
        onehot = np.eye(K)[w.cls]
        if high:
            n = int(np.clip(base_high + rng.integers(-2, 3), 10, 28))
            q = 0.55 + 0.35 * w.strength
            out[i] = rng.multinomial(n, q * onehot + (1 - q) * CONFUSION[w.cls])
        else:
            n = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.05, 0.05, 0.78, 0.06, 0.03, 0.03]))
            key = (w.cls, w.strength)
            if key not in impression:
                q = 0.45 + 0.3 * w.strength
                if low_vote_other > 0 and rng.random() < low_vote_other:
                    impression[key] = K - 1  # the single rater's bias: "other", whatever the EEG shows
                else:
                    impression[key] = w.cls if rng.random() < q else int(rng.choice(K, p=CONFUSION[w.cls]))
            seen = impression[key]
            out[i] = rng.multinomial(n, 0.9 * np.eye(K)[seen] + 0.1 * CONFUSION[seen])
    return out, flags


# ----------------------------------------------------------------------------- signals


def _spatial(rng: np.random.Generator, cls: int, side: int) -> np.ndarray:
    """(19,) spatial weights of a class signature on the scalp electrodes."""
    jitter = rng.uniform(0.6, 1.4, N_SCALP)  # uneven fields: bipolar pairs see generalised patterns
    if cls in (GPD, GRDA):
        w = _FRONTAL[_AP] * jitter
    elif cls in (LPD, LRDA):
        focus = rng.uniform(0.5, 3.5)
        w = np.exp(-0.5 * ((_AP - focus) / 1.3) ** 2) * np.where(_LATERAL, 1.2, 1.0)
        w = w * np.where(_SIDE == side, 1.0, np.where(_SIDE == 0, 0.35, 0.12)) * jitter
    elif cls == SEIZURE:
        focus = rng.uniform(0.0, 4.0)
        w = (0.55 + 0.45 * np.exp(-0.5 * ((_AP - focus) / 1.5) ** 2)) * np.where(_SIDE == side, 1.0, np.where(_SIDE == 0, 0.8, 0.65))
        w = w * jitter
    else:
        w = np.zeros(N_SCALP)
    return w / max(w.max(), 1e-9)


def _delays(rng: np.random.Generator) -> np.ndarray:
    """(19,) integer sample delays: random + antero-posterior propagation (so bipolar pairs see it)."""
    return (rng.uniform(0, 0.03, N_SCALP) * FS + _AP * rng.uniform(0, 0.015) * FS).astype(np.int64)


def _colored_noise(rng: np.random.Generator, n_rows: int, n: int, shapes: np.ndarray) -> np.ndarray:
    """(n_rows, n) float32 unit-variance noise whose amplitude spectrum is `shapes` (n_rows, n_freqs)."""
    nf = sfft.next_fast_len(n, real=True)
    # uniform real/imaginary parts (3× cheaper than normal ones): after the inverse FFT every sample
    # is a sum of thousands of them, hence Gaussian anyway
    spec = rng.random((n_rows, nf // 2 + 1, 2), dtype=np.float32).view(np.complex64)[..., 0]
    spec -= np.complex64(0.5 + 0.5j)
    spec *= shapes.astype(np.float32)
    x = sfft.irfft(spec, nf, axis=1)[:, :n]
    x /= x.std(axis=1, keepdims=True) + 1e-12
    return x.astype(np.float32, copy=False)


def _col(w: np.ndarray) -> np.ndarray:
    """(C,) weights → (C, 1) float32 column for broadcasting without float64 promotion."""
    return np.asarray(w, dtype=np.float32)[:, None]


def _background(rng: np.random.Generator, n: int, pat: _Patient) -> np.ndarray:
    """(20, n) float32 µV background: 1/f EEG, alpha, polymorphic delta, artifacts, DC, EKG."""
    nf = sfft.next_fast_len(n, real=True)
    f = np.fft.rfftfreq(nf, 1.0 / FS)
    beta = rng.uniform(1.6, 2.3)  # power ∝ 1/f^beta, steeper above ~20 Hz (like the real spectra)
    one_over_f = 1.0 / np.power(np.maximum(f, 0.15), beta / 2) / (1.0 + (f / 30.0) ** 3)
    alpha = np.exp(-0.5 * ((f - pat.alpha_hz) / 0.5) ** 2)
    delta = ((f > 0.5) & (f < 3.5)).astype(float)
    shapes = np.vstack([np.tile(one_over_f, (N_SCALP + 1, 1)), alpha, delta])
    noise = _colored_noise(rng, N_SCALP + 3, n, shapes)
    sigma = pat.sigma * rng.uniform(0.8, 1.25)
    mix = rng.uniform(0.3, 0.6)
    out = np.empty((N_SCALP + 1, n), dtype=np.float32)
    x = out[:N_SCALP]
    np.multiply(noise[:N_SCALP], np.float32(np.sqrt(1 - mix**2)), out=x)
    x += np.float32(mix) * noise[N_SCALP]
    x *= _col(sigma * rng.uniform(0.8, 1.2, N_SCALP))
    if rng.random() < 0.6:  # posterior dominant rhythm
        w = np.where(_AP >= 3, 1.0, np.where(_AP == 2, 0.35, 0.1)) * rng.uniform(0.3, 0.9)
        x += _col(w * sigma) * noise[N_SCALP + 1]
    if rng.random() < 0.35:  # polymorphic (non-rhythmic) delta, a distractor for LRDA/GRDA
        side = int(rng.choice([-1, 0, 1]))
        w = np.where((_SIDE == side) | (side == 0), 1.0, 0.3) * rng.uniform(0.3, 1.0)
        x += _col(w * sigma) * noise[N_SCALP + 2]
    x += _col(rng.normal(0.0, 15.0, N_SCALP))  # electrode DC offsets
    if rng.random() < 0.4:  # eye blinks on frontal electrodes
        t = np.arange(-int(0.4 * FS), int(0.4 * FS) + 1) / FS
        tmpl = np.exp(-0.5 * (t / 0.08) ** 2).astype(np.float32)
        train = np.zeros(n, dtype=np.float32)
        ev = rng.integers(0, n, rng.poisson(0.15 * n / FS))
        train[ev] = rng.uniform(50, 150, len(ev))
        w = np.where(_AP == 0, 1.0, np.where((_AP == 1) & (_SIDE != 0), 0.45, np.where(_AP == 1, 0.4, 0.0)))
        x += _col(w) * oaconvolve(train, tmpl, mode="same")[None, :]
    if rng.random() < 0.3:  # muscle bursts on temporal electrodes (mostly above 20 Hz)
        env = np.zeros(n, dtype=np.float32)
        for s in rng.integers(0, n, rng.poisson(0.03 * n / FS)):
            env[s : s + int(rng.uniform(1, 3) * FS)] = rng.uniform(10, 30)
        hf = rng.random((N_SCALP, n), dtype=np.float32) - np.float32(0.5)
        hf[:, 1:] -= hf[:, :-1].copy()  # first difference: high-pass
        x += _col(np.where(_LATERAL, 2.4, 0.5)) * env[None, :] * hf  # uniform: sd 0.29
    if rng.random() < 0.3:  # mains interference
        x += (rng.uniform(0.5, 3.0) * np.sin(2 * np.pi * 60.0 * np.arange(n) / FS)).astype(np.float32)[None, :]
    out[N_SCALP] = _ekg(rng, n)
    x += _col(rng.uniform(0.0, 0.02) * np.where(_LATERAL, 1.0, 0.3)) * out[N_SCALP][None, :]
    return out


def _ekg(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) µV EKG: QRS + T waves at 55–110 bpm with beat-to-beat jitter."""
    rr = 60.0 / rng.uniform(55, 110)
    n_beats = int(n / FS / rr) + 2
    beats = np.cumsum(rr * (1 + 0.015 * rng.standard_normal(n_beats))) - rng.uniform(0, rr)
    idx = (beats * FS).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < n)]
    train = np.zeros(n, dtype=np.float32)
    train[idx] = 1.0
    t = np.arange(-int(0.2 * FS), int(0.5 * FS)) / FS
    amp = np.exp(rng.uniform(np.log(300), np.log(3000))) * rng.choice([-1, 1])
    tmpl = amp * (-(t / 0.015) * np.exp(-0.5 * (t / 0.015) ** 2) * 1.6 + 0.25 * np.exp(-0.5 * ((t - 0.25) / 0.05) ** 2))
    # the template starts 0.2 s before the beat: drop that lead so the QRS sits on the beat
    full = oaconvolve(train, tmpl)[int(0.2 * FS) : int(0.2 * FS) + n]
    return (full + rng.normal(0, 5.0, n) + rng.normal(0, 30.0)).astype(np.float32)


def _envelope(n: int, ramp: int) -> np.ndarray:
    """(n,) 0→1→0 envelope with raised-cosine ramps of `ramp` samples."""
    env = np.ones(n, dtype=np.float32)
    r = min(ramp, n // 2)
    if r > 0:
        up = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, r, dtype=np.float32))
        env[:r] = up
        env[n - r :] = up[::-1]
    return env


def _signature(rng: np.random.Generator, cls: int, n: int, side: int) -> np.ndarray:
    """(19, n) float32 class pattern with peak ≈ 1 (before strength and amplitude scaling)."""
    if cls == OTHER or n <= 0:
        return np.zeros((N_SCALP, max(n, 0)), dtype=np.float32)
    w = _spatial(rng, cls, side)
    d = _delays(rng)
    t = np.arange(n) / FS
    if cls in (SEIZURE, LRDA, GRDA):
        if cls == SEIZURE:  # evolving: faster and smaller at onset, slower and larger later
            f0, f1 = rng.uniform(3.5, 5.0), rng.uniform(2.0, 3.0)
            freq = f0 + (f1 - f0) * np.minimum(t / max(t[-1], 1e-9) / 0.7, 1.0)
            amp = 0.5 + 0.5 * np.minimum(t / max(0.3 * t[-1], 1e-9), 1.0)
        else:
            fc = rng.uniform(1.2, 2.5)
            freq = fc * (1 + 0.08 * np.sin(2 * np.pi * t / rng.uniform(8, 20) + rng.uniform(0, 6.3)))
            amp = 0.85 + 0.15 * np.sin(2 * np.pi * t / rng.uniform(5, 15) + rng.uniform(0, 6.3))
        phase = 2 * np.pi * np.cumsum(freq) / FS + rng.uniform(0, 2 * np.pi)
        ph = phase[None, :] - 2 * np.pi * freq[None, :] * d[:, None] / FS  # per-channel lag
        if cls == SEIZURE:
            u = np.mod(ph / (2 * np.pi), 1.0)
            wave = np.exp(-0.5 * ((u - 0.15) / 0.035) ** 2) - 0.55 * np.exp(-0.5 * ((u - 0.55) / 0.14) ** 2)
        else:
            wave = (np.sin(ph) + 0.3 * np.sin(2 * ph + 0.6)) / 1.25
        return (w[:, None] * amp[None, :] * wave).astype(np.float32)
    # periodic discharges: an impulse train per channel convolved with a discharge template
    rate = rng.uniform(0.6, 1.6) if cls == LPD else rng.uniform(1.0, 2.5)
    isi = (1.0 / rate) * (1 + 0.07 * rng.standard_normal(int(n / FS * rate) + 3))
    ev = (np.cumsum(isi) - rng.uniform(0, 1.0 / rate)) * FS
    ev = ev[(ev >= 0) & (ev < n)].astype(np.int64)
    tt = np.arange(-int(0.3 * FS), int(0.3 * FS) + 1) / FS
    if cls == LPD:
        s1 = rng.uniform(0.015, 0.03)
        tmpl = np.exp(-0.5 * (tt / s1) ** 2) - 0.4 * np.exp(-0.5 * ((tt - 0.12) / 0.07) ** 2)
    else:  # triphasic
        s1 = rng.uniform(0.02, 0.035)
        tmpl = -0.3 * np.exp(-0.5 * ((tt + 0.05) / 0.02) ** 2) + np.exp(-0.5 * (tt / s1) ** 2) - 0.5 * np.exp(-0.5 * ((tt - 0.11) / 0.06) ** 2)
    trains = np.zeros((N_SCALP, n), dtype=np.float32)
    amps = rng.uniform(0.8, 1.2, len(ev)).astype(np.float32)
    idx = ev[None, :] + d[:, None]
    ok = idx < n
    rows = np.broadcast_to(np.arange(N_SCALP)[:, None], idx.shape)
    trains[rows[ok], idx[ok]] = np.broadcast_to(amps[None, :], idx.shape)[ok]
    return (w[:, None] * oaconvolve(trains, tmpl[None, :].astype(np.float32), mode="same", axes=1)).astype(np.float32)


def _render(rng: np.random.Generator, plan: _EEGPlan, pat: _Patient) -> tuple[np.ndarray, np.ndarray]:
    """Synthesise the session; return the EEG chunk (20, length·fs) float32 µV and its spectrogram (n_rows, 400)."""
    # buffer sample i is at session time i/fs - 1 s, so spectrogram row r (time 2r+1) is frame r
    n = (plan.spec_len_s + 2) * FS
    x = _background(rng, n, pat)
    # signal-to-noise is set in the double-banana montage, 0.5–20 Hz, where readers look at it
    e0 = (plan.lead_s + 1) * FS
    ref = sosfiltfilt(_BAND_SOS, _BIPOLAR @ x[:N_SCALP, e0 : e0 + 60 * FS], axis=1)
    bg_rms = float(np.median(ref.std(axis=1)))
    for a_s, b_s, cls, strength in plan.segments:
        a, b = (a_s + 1) * FS, min((b_s + 1) * FS, n)
        sig = _signature(rng, cls, b - a, pat.side)
        if sig.size and cls != OTHER:
            sig_rms = float(np.quantile((_BIPOLAR @ sig).std(axis=1), 0.75))  # lateralised: the involved half
            gain = SNR[cls] * strength * rng.uniform(0.85, 1.15) * bg_rms / max(sig_rms, 1e-9)
            x[:N_SCALP, a:b] += np.float32(gain) * sig * _envelope(b - a, 2 * FS)[None, :]
    if rng.random() < 0.2:  # missing data: NaN stretches on all channels (stored as null like the real files)
        for _ in range(int(rng.integers(1, 3))):
            dur = int(rng.uniform(1, 8) * FS)
            if rng.random() < 0.6:  # inside the EEG file
                s = (plan.lead_s + 1) * FS + int(rng.integers(0, max(plan.length_s * FS - dur, 1)))
            else:
                s = int(rng.integers(0, n - dur))
            x[:, s : s + dur] = np.nan
    eeg = x[:, e0 : e0 + plan.length_s * FS]
    return eeg, _kaggle_spectrogram(x)


def _kaggle_spectrogram(x: np.ndarray) -> np.ndarray:
    """(20, n) µV session → (n_rows, 400) float32 Kaggle spectrogram (regions LL, RL, LP, RP × 100 freqs), 2 s rows."""
    bip = _BIPOLAR @ x[:N_SCALP]  # (16, n): 4 chains × 4 pairs
    frames = sliding_window_view(bip, SPEC_NPERSEG, axis=1)[:, ::SPEC_HOP]  # (16, rows, 800)
    padded = np.zeros(frames.shape[:2] + (SPEC_NFFT,), dtype=np.float32)
    np.multiply(frames, np.hanning(SPEC_NPERSEG).astype(np.float32), out=padded[:, :, :SPEC_NPERSEG])
    z = sfft.rfft(padded, axis=2)[:, :, 3:103]
    power = z.real**2 + z.imag**2  # (16, rows, 100)
    regions = power.reshape(len(SPEC_REGIONS), 4, power.shape[1], 100).mean(axis=1)  # (4, rows, 100)
    spec = regions.transpose(1, 0, 2).reshape(power.shape[1], -1) * SPEC_SCALE
    return np.round(spec, 2).astype(np.float32)  # the real values have 2 decimals


# ----------------------------------------------------------------------------- writers


_PANDAS_META: dict[tuple, dict] = {}


def _write_parquet(path: Path, cols: dict[str, np.ndarray]) -> None:
    """Write like the real files: pandas metadata (no index), NaN as null, one row group, snappy."""
    key = tuple((k, v.dtype.str) for k, v in cols.items())
    if key not in _PANDAS_META:  # the pandas metadata of a frame with these columns (no rows needed)
        empty = pd.DataFrame({k: v[:0] for k, v in cols.items()})
        _PANDAS_META[key] = pa.Table.from_pandas(empty, preserve_index=False).schema.metadata
    table = pa.Table.from_arrays([pa.array(v, from_pandas=True) for v in cols.values()], names=list(cols), metadata=_PANDAS_META[key])
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="snappy")


def _write_eeg(path: Path, eeg: np.ndarray) -> None:
    """eeg: (20, n_times) float32 µV → parquet with the 20 real float32 columns (0.01 µV resolution like the real files)."""
    q = np.round(eeg, 2).astype(np.float32)
    _write_parquet(path, {c: q[i] for i, c in enumerate(HMS_EEG_CHANNELS)})


def _write_spec(path: Path, spec: np.ndarray, time_dtype: type) -> None:
    """spec: (n_rows, 400) float32 → parquet with `time` (1, 3, 5 … s) + `LL_0.59` … `RP_19.92`."""
    cols = {"time": (2 * np.arange(len(spec)) + 1).astype(time_dtype)}
    spec_t = np.ascontiguousarray(spec.T)
    cols.update({c: spec_t[i] for i, c in enumerate(SPEC_COLUMNS)})
    _write_parquet(path, cols)


def synth(out: Path, opts: SynthOptions) -> None:
    """`hbac synth hms`: `opts.n_eegs` train EEGs (default 60), `opts.n_test` test EEGs."""
    write_hms(out, n_eegs=opts.n_eegs or 60, seed=opts.seed, n_test=opts.n_test, low_vote_other=opts.low_vote_other)
