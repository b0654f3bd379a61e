"""`hbac.signals`: montages, hemisphere flip, NaN filling, filters, resampling, spectrogram crops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hbac.datasets.kaggle_spec import kaggle_spec_image, kaggle_spec_window
from hbac.signals.filters import bandpass, fill_nan, notch, resample
from hbac.signals.montage import (
    HMS_EEG_CHANNELS,
    SPEC_REGIONS,
    apply_montage,
    flip_permutation,
    montage_matrix,
    montage_names,
)
from hbac.signals.spectrogram import EEGSpectrogram


def sine(freq: float, fs: float, seconds: float, n_chans: int = 1) -> np.ndarray:
    """(n_chans, n) float32 unit sine."""
    t = np.arange(int(fs * seconds)) / fs
    return np.tile(np.sin(2 * np.pi * freq * t), (n_chans, 1)).astype(np.float32)


def power(x: np.ndarray) -> float:
    """Mean power of the middle half (away from filter edge effects)."""
    n = x.shape[-1]
    return float(np.mean(x[..., n // 4 : 3 * n // 4].astype(np.float64) ** 2))


# --------------------------------------------------------------------------- montages


def test_montage_matrix_shape_and_signs() -> None:
    m = montage_matrix("double_banana", HMS_EEG_CHANNELS)
    assert m.shape == (16, 20) and m.dtype == np.float32
    assert (m.sum(axis=1) == 0).all() and ((m == 1).sum(axis=1) == 1).all() and ((m == -1).sum(axis=1) == 1).all()
    names = montage_names("double_banana")
    r = names.index("Fp1-F7")
    assert m[r, HMS_EEG_CHANNELS.index("Fp1")] == 1 and m[r, HMS_EEG_CHANNELS.index("F7")] == -1
    assert montage_matrix("double_banana_central", HMS_EEG_CHANNELS).shape == (18, 20)
    raw = montage_matrix("raw", HMS_EEG_CHANNELS)
    np.testing.assert_array_equal(raw, np.eye(20, dtype=np.float32))
    # apply_montage: channel r is anode − cathode
    x = np.random.default_rng(0).standard_normal((20, 50)).astype(np.float32)
    y = apply_montage(x, HMS_EEG_CHANNELS, "double_banana")
    np.testing.assert_allclose(y[r], x[HMS_EEG_CHANNELS.index("Fp1")] - x[HMS_EEG_CHANNELS.index("F7")], atol=1e-6)


def test_montage_matrix_names_a_missing_channel() -> None:
    chans = [c for c in HMS_EEG_CHANNELS if c != "T5"]
    with pytest.raises(KeyError, match="T5"):
        montage_matrix("double_banana", chans)
    # channel names match case-insensitively (CHB-MIT headers are upper case)
    assert montage_matrix("double_banana", [c.upper() for c in HMS_EEG_CHANNELS]).shape == (16, 20)


@pytest.mark.parametrize("montage", ["double_banana", "double_banana_central", "raw", "chbmit_banana"])
def test_flip_permutation_is_an_involution(montage: str) -> None:
    names = montage_names(montage)
    p = flip_permutation(names)
    np.testing.assert_array_equal(p[p], np.arange(len(names)))
    assert sorted(p) == list(range(len(names)))


def test_flip_permutation_maps_left_to_right() -> None:
    names = montage_names("double_banana_central")
    p = flip_permutation(names)
    assert names[p[names.index("Fp1-F7")]] == "Fp2-F8"
    assert names[p[names.index("T5-O1")]] == "T6-O2"
    assert names[p[names.index("Cz-Pz")]] == "Cz-Pz"
    uni = montage_names("raw")
    q = flip_permutation(uni)
    assert uni[q[uni.index("C3")]] == "C4" and uni[q[uni.index("Cz")]] == "Cz" and uni[q[uni.index("EKG")]] == "EKG"
    r = flip_permutation(SPEC_REGIONS)
    assert [SPEC_REGIONS[i] for i in r] == ["RL", "LL", "RP", "LP"]
    # x[perm] swaps hemispheres
    x = np.arange(len(names))[:, None] * np.ones((1, 4))
    assert x[p][names.index("Fp1-F7"), 0] == names.index("Fp2-F8")


# --------------------------------------------------------------------------- cleaning and filters


def test_fill_nan() -> None:
    x = np.array([[1.0, np.nan, 3.0, np.nan], [np.nan] * 4, [2.0, 2.0, 2.0, 2.0], [np.nan, 4.0, np.nan, 8.0]], np.float32)
    np.testing.assert_array_equal(fill_nan(x, "interp"), [[1, 2, 3, 3], [0, 0, 0, 0], [2, 2, 2, 2], [4, 4, 6, 8]])
    np.testing.assert_array_equal(fill_nan(x, "zero"), [[1, 0, 3, 0], [0, 0, 0, 0], [2, 2, 2, 2], [0, 4, 0, 8]])
    np.testing.assert_array_equal(fill_nan(x, "mean"), [[1, 2, 3, 2], [0, 0, 0, 0], [2, 2, 2, 2], [6, 4, 6, 8]])
    assert np.isnan(x).sum() == 8  # the input is not modified
    clean = np.ones((2, 3), np.float32)
    assert fill_nan(clean) is clean or np.array_equal(fill_nan(clean), clean)
    with pytest.raises(ValueError, match="NaN"):
        fill_nan(x, "median")


def test_bandpass_passes_5hz_and_stops_40hz() -> None:
    fs = 200.0
    slow, fast = sine(5, fs, 20), sine(40, fs, 20)
    assert power(bandpass(slow, fs, 0.5, 20.0)) / power(slow) > 0.95
    assert power(bandpass(fast, fs, 0.5, 20.0)) / power(fast) < 1e-3
    # high-pass only: a DC offset is removed
    dc = np.full((1, 4000), 50.0, np.float32) + sine(5, fs, 20)
    assert abs(float(bandpass(dc, fs, 0.5, None)[0, 1000:3000].mean())) < 0.5
    assert bandpass(slow, fs, None, None) is slow


def test_notch_removes_60hz() -> None:
    fs = 256.0
    hum, alpha = sine(60, fs, 20), sine(10, fs, 20)
    assert power(notch(hum, fs, 60.0)) / power(hum) < 1e-3
    assert power(notch(alpha, fs, 60.0)) / power(alpha) > 0.98


@pytest.mark.parametrize(("fs_in", "fs_out", "n_in", "n_out"), [(200, 100, 10000, 5000), (256, 200, 2560, 2000), (200, 200, 777, 777)])
def test_resample_length(fs_in: float, fs_out: float, n_in: int, n_out: int) -> None:
    x = sine(3, fs_in, n_in / fs_in, n_chans=2)
    y = resample(x, fs_in, fs_out)
    assert y.shape == (2, n_out) and y.dtype == np.float32
    # a slow sine survives resampling
    t = np.arange(n_out) / fs_out
    np.testing.assert_allclose(y[0, n_out // 4 : 3 * n_out // 4], np.sin(2 * np.pi * 3 * t)[n_out // 4 : 3 * n_out // 4], atol=0.02)


# --------------------------------------------------------------------------- Kaggle spectrograms


def test_kaggle_spec_window_crops_and_pads_with_nan() -> None:
    times = np.arange(1, 621, 2, dtype=np.float64)  # 310 rows: 1, 3, … 619 s
    spec = np.arange(310 * 400, dtype=np.float32).reshape(310, 400)
    w = kaggle_spec_window(spec, times, 0.0)
    np.testing.assert_array_equal(w, spec[:300])
    w = kaggle_spec_window(spec, times, 40.0)  # first row with time ≥ 40 s: time 41, row 20
    assert w.shape == (300, 400) and w.dtype == np.float32
    np.testing.assert_array_equal(w[:290], spec[20:310])
    assert np.isnan(w[290:]).all()
    assert np.isnan(kaggle_spec_window(spec, times, 10_000.0)).all()


def test_kaggle_spec_image_shape_and_region_order() -> None:
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 2.0, (300, 400)).astype(np.float32)
    w[:, :100] = 1000.0  # LL columns loud
    w[5, 150] = np.nan
    img = kaggle_spec_image(w)
    assert img.shape == (4, 100, 300) and img.dtype == np.float32 and np.isfinite(img).all()
    assert img[0].min() > img[1:].max()  # LL columns → image[0]
    assert img[1, 50, 5] == img.min()  # NaN → 0 → the clip floor
    # column c of the window (region c // 100, frequency c % 100) at time t → img[c // 100, c % 100, t]
    cols = np.arange(400, dtype=np.float32)
    steps = np.arange(300, dtype=np.float32)
    w = (1.0 + cols[None, :]) * (1.0 + steps[:, None] / 1000.0)  # increases with column and with time
    img = kaggle_spec_image(w)
    flat = img.reshape(400, 300)
    assert (np.diff(flat, axis=0) > 0).all() and (np.diff(flat, axis=1) > 0).all()


# --------------------------------------------------------------------------- torch spectrograms


@pytest.mark.parametrize("kind", ["stft", "mel"])
def test_eeg_spectrogram_shape_and_finite(kind: str) -> None:
    spec = EEGSpectrogram(fs=200.0, kind=kind, n_fft=256, hop=25, n_mels=64, fmax=20.0, out_height=64, out_width=128)
    x = torch.randn(2, 16, 2000)
    y = spec(x)
    assert y.shape == (2, 16, 64, 128) and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert torch.isfinite(spec(torch.zeros(1, 16, 2000))).all()  # silence: log of the floor, no NaN


@pytest.mark.parametrize("kind,n_fft,fmin,fmax", [("mel", 256, 0.5, 20.0), ("mel", 512, 0.5, 40.0), ("mel", 1024, 0.0, 20.0),
                                                  ("stft", 256, 0.5, 20.0)])
def test_eeg_spectrogram_band_equals_every_bin(kind: str, n_fft: int, fmin: float, fmax: float) -> None:
    """Power, mel product and log run on the bins inside [fmin, fmax] only: the image equals the one computed
    from every FFT bin (the mel filterbank over all bins, the stft rows picked from all bins)."""
    from hbac.signals.spectrogram import _mel_fbank

    spec = EEGSpectrogram(fs=200.0, kind=kind, n_fft=n_fft, hop=50, n_mels=32, fmin=fmin, fmax=fmax, out_height=32, out_width=64)
    x = 50 * torch.randn(2, 4, 4000)
    s = torch.stft(x.reshape(8, -1), n_fft, 50, n_fft, torch.hann_window(n_fft), center=True, return_complex=True)
    p = s.real**2 + s.imag**2  # every bin
    freqs = torch.linspace(0, 100.0, n_fft // 2 + 1)
    if kind == "mel":
        p = torch.einsum("nft,fm->nmt", p, _mel_fbank(n_fft // 2 + 1, 32, 200.0, fmin, fmax))
    else:
        p = p[:, (freqs >= fmin) & (freqs <= fmax)]
    p = torch.log10(p + 1e-6).reshape(2, 4, p.shape[1], p.shape[2])
    p = (p - p.mean(dim=(1, 2, 3), keepdim=True)) / (p.std(dim=(1, 2, 3), keepdim=True) + 1e-6)
    want = torch.nn.functional.interpolate(p, size=(32, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(spec(x), want, rtol=1e-5, atol=1e-5)
    assert spec.bins[1] - spec.bins[0] < n_fft // 4  # fmax 20-40 Hz of the 100 Hz Nyquist: a fraction of the bins


def test_eeg_spectrogram_stft_peak_row() -> None:
    fs, n_fft, h = 200.0, 1024, 128
    spec = EEGSpectrogram(fs=fs, kind="stft", n_fft=n_fft, hop=50, fmin=0.0, fmax=20.0, out_height=h, out_width=64)
    x = torch.from_numpy(sine(5.0, fs, 50, n_chans=16))[None] + 0.01 * torch.randn(1, 16, 10000)
    y = spec(x)[0].mean(dim=(0, 2))  # (h,) mean over channels and time
    df = fs / n_fft  # Hz per FFT bin; kept bins 0 … 20 Hz
    n_kept = int(np.floor(20.0 / df)) + 1
    expect = (5.0 / df + 0.5) * h / n_kept - 0.5  # bilinear resize, align_corners=False
    assert abs(int(torch.argmax(y)) - expect) <= 1.5
