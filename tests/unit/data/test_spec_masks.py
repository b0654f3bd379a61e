"""Time/frequency masks (`hbac.data.augment.span_mask` / `mask_spec`): one copy for numpy items (the Dataset's
Kaggle spectrogram) and torch batches (the 2D model's in-model spectrogram)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hbac.data.augment import mask_spec, span_mask


def bands(masked: np.ndarray, axis: int) -> list[np.ndarray]:
    """Per sample of a (B, C, F, T) result, the indices along `axis` where every other axis is filled (NaN)."""
    other = tuple(a for a in range(1, masked.ndim) if a != axis % masked.ndim)
    return [np.flatnonzero(np.isnan(s).all(axis=tuple(a - 1 for a in other))) for s in masked]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batched", [False, True])
def test_numpy_and_torch_mask_the_same_band_for_the_same_generator_state(seed: int, batched: bool) -> None:
    x = np.random.default_rng(100 + seed).normal(size=(5, 3, 40, 60) if batched else (3, 40, 60)).astype(np.float32)
    a = mask_spec(x, 0.9, 0.9, np.nan, batched=batched, rng=np.random.default_rng(seed))
    b = mask_spec(torch.from_numpy(x), 0.9, 0.9, float("nan"), batched=batched, rng=np.random.default_rng(seed))
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float32 and a.dtype == np.float32
    np.testing.assert_array_equal(a, b.numpy())  # NaN positions equal too
    assert np.isnan(a).any()  # p = 0.9 on two axes of 1 or 5 samples: seeds chosen so something is masked
    np.testing.assert_array_equal(x[~np.isnan(a)], a[~np.isnan(a)])  # the rest is untouched
    if batched:  # on one axis, a single item is the first sample of a batch drawn from the same state
        one = span_mask(x[0], 0.9, -1, np.nan, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(one, span_mask(x, 0.9, -1, np.nan, batched=True, rng=np.random.default_rng(seed))[0])


@pytest.mark.parametrize("as_torch", [False, True])
def test_probability_zero_leaves_the_input_and_the_generator_alone(as_torch: bool) -> None:
    x = np.arange(2 * 3 * 8 * 20, dtype=np.float32).reshape(2, 3, 8, 20)
    xin = torch.from_numpy(x.copy()) if as_torch else x.copy()
    rng = np.random.default_rng(5)
    out = mask_spec(xin, 0.0, 0.0, np.nan, batched=True, rng=rng)
    assert out is xin
    np.testing.assert_array_equal(np.asarray(out), x)
    assert rng.random() == np.random.default_rng(5).random()  # no draw consumed


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("axis,max_frac", [(-1, 0.1), (-2, 0.125), (-1, 0.5)])
def test_probability_one_masks_one_band_of_every_sample(as_torch: bool, axis: int, max_frac: float) -> None:
    x = np.random.default_rng(0).normal(size=(64, 2, 30, 50)).astype(np.float32)
    xin = torch.from_numpy(x) if as_torch else x
    out = np.asarray(span_mask(xin, 1.0, axis, np.nan, max_frac=max_frac, batched=True, rng=np.random.default_rng(1)))
    n = x.shape[axis]
    widths = []
    for i, band in enumerate(bands(out, axis)):
        assert len(band) >= 1, f"sample {i} not masked"
        assert np.array_equal(band, np.arange(band[0], band[-1] + 1)), "one contiguous band"
        assert band[-1] < n
        widths.append(len(band))
    assert np.isnan(out).sum() == sum(widths) * out[0].size // n  # nothing outside the bands
    assert 1 <= min(widths) and max(widths) <= int(max_frac * n) + 1
    assert len(set(widths)) > 1  # the width is drawn, not fixed


def test_per_sample_probability_and_fills() -> None:
    rng = np.random.default_rng(3)
    x = torch.ones(4000, 1, 4, 20)
    out = span_mask(x, 0.3, -1, 0.0, batched=True, rng=rng)  # the model's fill: 0
    hit = (out == 0).any(dim=(1, 2, 3)).float().mean().item()
    assert abs(hit - 0.3) < 0.03, hit
    assert set(torch.unique(out).tolist()) == {0.0, 1.0}
    item = span_mask(np.ones((4, 10, 30), np.float32), 1.0, -2, np.nan, rng=rng)  # the Dataset's fill: NaN
    rows = np.isnan(item).all(axis=(0, 2))
    assert rows.any() and np.isnan(item).sum() == rows.sum() * 4 * 30


def test_batch_axis_cannot_be_masked() -> None:
    with pytest.raises(ValueError, match="batch axis"):
        span_mask(np.zeros((2, 3, 4)), 1.0, 0, 0.0, batched=True)


def test_without_a_generator_torch_draws_from_its_reseeded_global_state() -> None:
    """rng None on a tensor: torch's generator on its device (the trainer reseeds it every epoch), no host draw."""
    x = torch.randn(16, 2, 20, 40)
    torch.manual_seed(4)
    a = mask_spec(x, 0.5, 0.5, 0.0, batched=True)
    torch.manual_seed(4)
    np.random.seed(99)  # numpy's state plays no part
    b = mask_spec(x, 0.5, 0.5, 0.0, batched=True)
    assert torch.equal(a, b) and (a == 0).any()
