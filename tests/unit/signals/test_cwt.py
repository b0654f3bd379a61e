"""Morlet CWT module: peak frequency, amplitude, time localisation, shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hbac.signals.cwt import MorletCWT, morlet_frequencies

FS = 200.0


def test_sinusoid_peaks_at_its_frequency_with_its_amplitude() -> None:
    cwt = MorletCWT(FS, fmin=0.5, fmax=20.0, n_freqs=60, n_cycles=7.0)
    t = torch.arange(10_000) / FS
    x = torch.stack([3 * torch.cos(2 * np.pi * 10 * t), 5 * torch.sin(2 * np.pi * 2 * t)])[None]
    amp = cwt.power(x)[0].sqrt().mean(dim=-1).numpy()  # (2, n_freqs) mean amplitude
    f = cwt.freqs.numpy()
    for c, (f0, a0) in enumerate([(10.0, 3.0), (2.0, 5.0)]):
        k = int(amp[c].argmax())
        assert abs(f[k] - f0) / f0 < 0.05, f"channel {c}: peak at {f[k]:.2f} Hz, expected {f0}"
        assert amp[c, k] == pytest.approx(a0, rel=0.05)


def test_burst_is_localised_in_time() -> None:
    """A 10 Hz burst in the middle second: power there, (almost) none a few seconds away."""
    cwt = MorletCWT(FS, fmin=1.0, fmax=20.0, n_freqs=30)
    t = torch.arange(2000) / FS
    x = (torch.cos(2 * np.pi * 10 * t) * ((t > 4.5) & (t < 5.5)))[None, None]
    p = cwt.power(x)[0, 0]  # (F, frames) over 10 s
    k = int((cwt.freqs - 10).abs().argmin())
    frames = p.shape[-1]
    centre = p[k, int(0.5 * frames)]
    far = p[k, int(0.1 * frames)]
    assert far < 1e-3 * centre


def test_output_shape_and_standardised() -> None:
    cwt = MorletCWT(FS, n_freqs=12, out_height=24, out_width=50)
    y = cwt(torch.randn(3, 4, 1000) * 20)
    assert y.shape == (3, 4, 24, 50) and torch.isfinite(y).all()
    assert y.mean(dim=(1, 2, 3)).abs().max() < 0.1


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="fmax"):
        MorletCWT(FS, fmax=150.0)
    with pytest.raises(ValueError, match="fmin"):
        morlet_frequencies(5.0, 2.0, 10)
