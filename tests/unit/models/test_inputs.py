"""The model input stage: Kaggle spectrogram normalisation as the starter notebook (on the device), raw items from the dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hbac.datasets.hms import read_spectrogram, spec_path
from hbac.datasets.kaggle_spec import kaggle_spec_regions, kaggle_spec_starter, kaggle_spec_window
from hbac.models.inputs import InputStage, normalise_kaggle_spec


def starter_notebook(window: np.ndarray) -> np.ndarray:
    """Chris Deotte's starter notebook, written out as it is there: per region, clip → log → standardise → NaN to 0."""
    out = np.zeros((4, 100, window.shape[0]), np.float32)
    for k in range(4):
        img = window[:, k * 100 : (k + 1) * 100].T
        img = np.clip(img, np.exp(-4), np.exp(8))
        img = np.log(img)
        ep = 1e-6
        m = np.nanmean(img.flatten())
        s = np.nanstd(img.flatten())
        img = (img - m) / (s + ep)
        out[k] = np.nan_to_num(img, nan=0.0)
    return out


def real_window(real_hms: Path, offset: float) -> np.ndarray:
    times, vals = read_spectrogram(spec_path(real_hms, 780890284))
    return kaggle_spec_window(vals, times, offset)


def test_kaggle_normalisation_is_the_starter_notebooks(real_hms: Path) -> None:
    # a late offset: the 10-minute window runs past the file's end, so the tail is NaN
    for offset in (0.0, float(read_spectrogram(spec_path(real_hms, 780890284))[0][-1]) - 200.0):
        w = real_window(real_hms, offset)
        expect = starter_notebook(w)
        got = normalise_kaggle_spec(torch.from_numpy(kaggle_spec_regions(w))[None])[0].numpy()
        np.testing.assert_allclose(got, expect, atol=2e-4)
        np.testing.assert_allclose(kaggle_spec_starter(w), expect, atol=1e-5)
    assert np.isnan(w).any() and (got == 0).any()


def test_fixed_normalisation_range_and_input_stage_passthrough() -> None:
    x = torch.rand(2, 4, 100, 300) * 1e3
    x[0, :, :, 250:] = float("nan")
    y = normalise_kaggle_spec(x, "fixed")
    assert torch.isfinite(y).all() and y.min() >= -1 and y.max() <= 1
    stage = InputStage(200.0, None)
    out = stage({"kaggle_spec": x, "eeg": torch.ones(2, 16, 100), "target": torch.zeros(2, 6)})
    assert torch.equal(out["eeg"], torch.ones(2, 16, 100)) and torch.isfinite(out["kaggle_spec"]).all()
    assert out["kaggle_spec"].flatten(2).std(dim=2).sub(1).abs().max() < 0.2  # standardised per image (NaN tail set to 0)
