"""The per-window filter response in closed form equals scipy's sosfreqz / freqz of the same filters."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as sps

from hbac.signals.filters import _butter_sos, butter_power, notch_power, zero_phase_response


@pytest.mark.parametrize("fs", [100.0, 128.0, 200.0, 250.0, 256.0, 512.0])
@pytest.mark.parametrize("band", [(0.5, 20.0), (0.5, None), (None, 20.0), (1.0, 40.0), (0.3, 45.0), (0.5, 99.9)])
@pytest.mark.parametrize("order", [2, 4, 5])
def test_butter_power_equals_sosfreqz(fs: float, band: tuple, order: int) -> None:
    """|H|² for band-, low- and high-pass designs (edges near Nyquist capped as `_butter_sos` caps them)."""
    if band[1] and band[1] >= fs / 2:
        pytest.skip("edge above Nyquist")
    freqs = np.fft.rfftfreq(12001, d=1.0 / fs)  # odd length: no bin exactly at Nyquist, and one at DC
    _, h = sps.sosfreqz(_butter_sos(band[0], band[1], fs, order), worN=freqs, fs=fs)
    want = np.abs(h) ** 2
    got = butter_power(freqs, fs, band[0], band[1], order)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.array_equal(got.astype(np.float32) > 0.5, want.astype(np.float32) > 0.5)


@pytest.mark.parametrize("fs,freq", [(200.0, 60.0), (200.0, 50.0), (256.0, 60.0), (250.0, 50.0)])
def test_notch_power_equals_freqz(fs: float, freq: float) -> None:
    freqs = np.fft.rfftfreq(12000, d=1.0 / fs)
    b, a = sps.iirnotch(freq, 30.0, fs)
    _, h = sps.freqz(b, a, worN=freqs, fs=fs)
    np.testing.assert_allclose(notch_power(freqs, fs, freq), np.abs(h) ** 2, rtol=0, atol=1e-12)


def test_zero_phase_response_band_and_notch_to_float32() -> None:
    """The response a model builds (band-pass x notch) matches the scipy-designed one to float32 precision."""
    fs, n_fft = 200.0, 12000
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / fs)
    _, hb = sps.sosfreqz(_butter_sos(0.5, 20.0, fs, 4), worN=freqs, fs=fs)
    b, a = sps.iirnotch(60.0, 30.0, fs)
    _, hn = sps.freqz(b, a, worN=freqs, fs=fs)
    want = (np.abs(hb) ** 2 * np.abs(hn) ** 2).astype(np.float32)
    got = zero_phase_response(n_fft, fs, (0.5, 20.0), 60.0).astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=0, atol=float(np.finfo(np.float32).eps))
