"""Montages: bipolar pairs by electrode name, applied pair by pair; left/right mirror permutations.

Conventions: multichannel signals are `(n_chans, n_times)` float32 in µV; sampling rates in Hz.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

# Kaggle spectrograms: `time` (1, 3, 5, … s) + 4 regions × 100 frequencies
SPEC_REGIONS = ["LL", "RL", "LP", "RP"]


# Double banana: four chains of 4 bipolar pairs (LL, RL, LP, RP) + optional central chain
# Chain order LL, RL, LP, RP matches the region order of the Kaggle spectrogram columns.
BANANA_CHAINS = {
    "LL": [("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1")],
    "RL": [("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2")],
    "LP": [("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1")],
    "RP": [("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2")],
}


CENTRAL_CHAIN = [("Fz", "Cz"), ("Cz", "Pz")]


# 18-channel double banana as named in CHB-MIT EDF headers
CHBMIT_BANANA = [
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1",
    "FP1-F3", "F3-C3", "C3-P3", "P3-O1",
    "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
    "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
    "FZ-CZ", "CZ-PZ",
]


# TUH's temporal central parasagittal (TCP) montage: 22 bipolar pairs, old 10-20 names
TCP_MONTAGE = [
    "FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8", "F8-T4", "T4-T6", "T6-O2",
    "A1-T3", "T3-C3", "C3-CZ", "CZ-C4", "C4-T4", "T4-A2",
    "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
]


HMS_EEG_CHANNELS = [
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz", "Pz",
    "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2", "EKG",
]  # column order of the real train_eegs/*.parquet files


def montage_pairs(montage: str) -> list[tuple[str, str]]:
    """Bipolar pairs (anode, cathode) of a named montage; `raw` gives unipolar channels (name, '')."""
    if montage == "double_banana":
        return [p for chain in BANANA_CHAINS.values() for p in chain]
    if montage == "double_banana_central":
        return [p for chain in BANANA_CHAINS.values() for p in chain] + list(CENTRAL_CHAIN)
    if montage == "raw":
        return [(c, "") for c in HMS_EEG_CHANNELS]
    if montage == "chbmit_banana":
        return [tuple(n.split("-")) for n in CHBMIT_BANANA]  # type: ignore[misc]
    if montage == "tcp":
        return [tuple(n.split("-")) for n in TCP_MONTAGE]  # type: ignore[misc]
    raise ValueError(f"unknown montage {montage!r}")


def montage_names(montage: str) -> list[str]:
    """Channel names of a montage, e.g. 'Fp1-F7'."""
    return [f"{a}-{b}" if b else a for a, b in montage_pairs(montage)]


def montage_matrix(montage: str, channels: Sequence[str]) -> np.ndarray:
    """(n_out, n_in) float32 matrix M with bipolar = M @ unipolar (for analysis; `apply_montage` works pair by pair)."""
    idx = {c.upper(): i for i, c in enumerate(channels)}
    pairs = montage_pairs(montage)
    m = np.zeros((len(pairs), len(channels)), dtype=np.float32)
    for r, (a, b) in enumerate(pairs):
        for name, sign in ((a, 1.0), (b, -1.0)):
            if not name:
                continue
            if name.upper() not in idx:
                raise KeyError(f"montage {montage!r} needs channel {name!r}, not in {list(channels)}")
            m[r, idx[name.upper()]] = sign
    return m


def montage_indices(montage: str, channels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(anode (n_out,), cathode (n_out,)) indices into `channels`; cathode -1 for a unipolar channel."""
    anode, cathode = _montage_indices(montage, tuple(channels))
    return anode.copy(), cathode.copy()


@lru_cache(maxsize=64)
def _montage_indices(montage: str, channels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """`montage_indices`, computed once per (montage, channels): prepare asks for every recording."""
    m = montage_matrix(montage, channels)  # validates names; each row has one +1 and at most one -1
    anode = np.argmax(m > 0, axis=1)
    has_cathode = (m < 0).any(axis=1)
    cathode = np.where(has_cathode, np.argmax(m < 0, axis=1), -1)
    return anode.astype(np.int64), cathode.astype(np.int64)


def apply_montage(x: np.ndarray, channels: Sequence[str], montage: str) -> np.ndarray:
    """x: (n_in, n_times) unipolar → (n_out, n_times) bipolar float32, pair by pair.

    Each output channel is `x[anode] - x[cathode]` of its own two electrodes only, so a NaN in
    one electrode (or in EKG, which no pair uses) reaches only the pairs that contain it; a
    matrix product over all inputs would spread it to every pair (0 * NaN = NaN).
    """
    anode, cathode = montage_indices(montage, channels)
    x = np.asarray(x, dtype=np.float32)
    out = x[anode]  # fancy indexing: a copy
    bip = cathode >= 0
    if bip.any():
        out[bip] -= x[cathode[bip]]
    return out


_ELECTRODE = re.compile(r"^([A-Za-z]+?)(\d+|[zZ])$")


def _flip_electrode(name: str) -> str:
    m = _ELECTRODE.match(name)
    if not m or m.group(2) in ("z", "Z"):
        return name
    n = int(m.group(2))
    return f"{m.group(1)}{n + 1 if n % 2 else n - 1}"


def flip_permutation(names: Sequence[str]) -> np.ndarray:
    """Index permutation that mirrors left↔right hemispheres: x[perm] is the flipped signal.

    Works on bipolar ('Fp1-F7') and unipolar ('C3') names, and on Kaggle spectrogram regions
    (LL↔RL, LP↔RP). Channels without a mirror (midline, EKG) stay in place.
    """
    regions = {"LL": "RL", "RL": "LL", "LP": "RP", "RP": "LP"}
    pos = {n.upper(): i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    for i, n in enumerate(names):
        if n in regions:
            flipped = regions[n]
        else:
            flipped = "-".join(_flip_electrode(p) for p in n.split("-"))
        j = pos.get(flipped.upper())
        if j is not None:
            perm[i] = j
    return perm


# 10-20 electrode names changed between nomenclatures: CHB-MIT uses T7/P7/T8/P8 for T3/T5/T4/T6
_ALIASES = {"T7": "T3", "P7": "T5", "T8": "T4", "P8": "T6"}


def _canon(name: str) -> str:
    """A bipolar pair name in canonical form: upper case, CHB-MIT electrode names mapped to the older ones."""
    return "-".join(_ALIASES.get(p, p) for p in name.upper().split("-"))


def chain_indices(channels: Sequence[str]) -> Optional[list[list[int]]]:
    """Indices of the 4 double-banana chains (LL, RL, LP, RP) × 4 pairs in `channels`, or None if any is missing."""
    pos = {_canon(c): i for i, c in enumerate(channels)}
    out = []
    for chain in BANANA_CHAINS.values():
        idx = [pos.get(_canon(f"{a}-{b}")) for a, b in chain]
        if any(i is None for i in idx):
            return None
        out.append(idx)  # type: ignore[arg-type]
    return out
