"""ICA artifact removal: ocular and muscle components are found and removed, brain activity is kept;
ICA off leaves cache hashes unchanged, on changes them."""
from __future__ import annotations

import numpy as np

from hbac.config import DataConfig
from hbac.signals.filters import preprocess
from hbac.signals.ica import ica_clean

FS = 128.0
CHANNELS = ["FP1-F7", "FP2-F8", "F3-C3", "F4-C4", "C3-P3", "C4-P4", "P3-O1", "P4-O2"]


def _mixture(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x (8, n), brain part, EOG part, EMG part): 4 brain rhythms + blinks on FP + temporal muscle noise."""
    rng = np.random.default_rng(seed)
    n = int(120 * FS)
    t = np.arange(n) / FS
    brain_src = np.stack([np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * (1 + 0.3 * np.sin(2 * np.pi * 0.05 * k * t))
                          for k, f in enumerate((6.0, 9.5, 11.0, 4.5), start=1)])
    blinks = np.zeros(n)
    for tb in rng.uniform(2, 118, 30):
        blinks += 150 * np.exp(-0.5 * ((t - tb) / 0.15) ** 2)
    emg = np.convolve(rng.standard_normal(n), np.ones(2) / 2, mode="same") * 40
    emg = emg - np.convolve(emg, np.ones(9) / 9, mode="same")  # keep the > 20 Hz part
    brain = rng.normal(0, 1, (8, 4)) @ brain_src * 20
    eog = np.outer([1.0, 0.9, 0.3, 0.25, 0.05, 0.05, 0.0, 0.0], blinks)
    emgp = np.outer([0.2, 0.2, 0.1, 0.1, 0.6, 0.8, 0.1, 0.1], emg)
    sensor = rng.normal(0, 1.0, (8, n))  # a little independent sensor noise: full-rank data, as recorded
    return brain + eog + emgp + sensor, brain, eog, emgp


def test_ica_removes_blinks_and_muscle_keeps_brain() -> None:
    x, brain, eog, emg = _mixture()
    y, info = ica_clean(x, FS, CHANNELS, eog_corr=0.6, emg_ratio=0.6)
    assert info["eog"] and info["emg"], info
    err_before = np.linalg.norm(x - brain) / np.linalg.norm(brain)
    err_after = np.linalg.norm(y - brain) / np.linalg.norm(brain)
    assert err_after < 0.4 * err_before, (err_before, err_after)  # measured: 0.75 → 0.24
    fp_blink = np.abs(y[0] - brain[0]).max()
    assert fp_blink < 0.3 * np.abs(eog[0]).max()
    # through the pipeline: ICA runs after the band-pass, on the named channels
    z = preprocess(x.astype(np.float32), FS, band=[0.5, 40.0], ica=(0.6, 0.6), channels=CHANNELS)
    assert z.shape == x.shape and np.abs(z[0]).max() < 0.5 * np.abs(preprocess(x, FS, band=[0.5, 40.0])[0]).max()


def test_ica_off_keeps_cache_hash() -> None:
    base = DataConfig(name="a", dataset="chbmit", data_dir="/d")
    other = DataConfig(name="a", dataset="chbmit", data_dir="/d")
    other.eeg.ica_eog_corr = 0.9  # ICA off: its thresholds do not matter
    assert base.hash() == other.hash() and "ica" not in base.hash_params()["eeg"]
    other.eeg.ica = True
    assert other.hash() != base.hash()
