"""Time/frequency masks (`hbac.data.augment.span_mask` / `mask_spec`): one copy for numpy items (the Dataset's
Kaggle spectrogram) and torch batches (the 2D model's in-model spectrogram)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hbac.data.augment import mask_spec, span_mask


def expected_band(u: np.ndarray, n: int, prob: float, max_frac: float) -> list[int]:
    """Indices the documented draw masks for one sample's 3 uniforms (width, start, apply), in plain Python."""
    if not u[2] < prob:
        return []
    width = min(n, math.floor(float(u[0]) * (max_frac * n)) + 1)
    start = math.floor(float(u[1]) * (n - width + 1))
    return list(range(start, start + width))


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


def filled(out: np.ndarray, axis: int, fill: float) -> list[list[int]]:
    """Per sample of a batch, the indices along `axis` whose whole slice equals `fill` (NaN counts as NaN)."""
    hit = np.isnan(out) if np.isnan(fill) else out == fill
    other = tuple(a for a in range(1, out.ndim) if a != axis % out.ndim)
    return [np.flatnonzero(h.all(axis=tuple(a - 1 for a in other))).tolist() for h in hit]


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("fill", [0.0, float("nan"), -3.5])
def test_bands_are_where_the_generator_says(as_torch: bool, fill: float) -> None:
    """Time band from the first (B, 3) uniforms, then the frequency band from the next (B, 3); fill as given;
    shape and dtype kept; everything else untouched."""
    b, shape, prob, max_frac = 24, (24, 2, 30, 50), 0.6, 0.2
    x = np.random.default_rng(0).uniform(1.0, 2.0, size=shape).astype(np.float32)  # no value equals a fill
    xin = torch.from_numpy(x.copy()) if as_torch else x.copy()
    out = mask_spec(xin, prob, prob, fill, max_frac=max_frac, batched=True, rng=np.random.default_rng(11))
    assert type(out) is type(xin) and tuple(out.shape) == shape and str(out.dtype).endswith("float32")
    out = np.asarray(out)
    u = np.random.default_rng(11).random((2, b, 3))  # the same generator state: time draws, then frequency draws
    want_t = [expected_band(u[0, i], 50, prob, max_frac) for i in range(b)]
    want_f = [expected_band(u[1, i], 30, prob, max_frac) for i in range(b)]
    assert filled(out, -1, fill) == want_t and filled(out, -2, fill) == want_f
    assert any(want_t) and any(want_f) and not all(want_t)  # some samples masked, some not
    expect = x.copy()
    for i in range(b):
        expect[i, :, :, want_t[i]] = fill
        expect[i, :, want_f[i], :] = fill
    np.testing.assert_array_equal(out, expect)  # nothing else changed
    np.testing.assert_array_equal(np.asarray(xin), x)  # the input itself is not written


def test_one_item_uses_one_row_of_draws_per_axis() -> None:
    """Unbatched (R, F, T) item (the Dataset's Kaggle spectrogram): one (1, 3) draw for time, then one for frequency."""
    x = np.ones((4, 40, 120), np.float32)
    out = mask_spec(x, 1.0, 1.0, np.nan, max_frac=0.125, rng=np.random.default_rng(2))
    u = np.random.default_rng(2).random((2, 3))
    cols = np.flatnonzero(np.isnan(out).all(axis=(0, 1))).tolist()
    rows = np.flatnonzero(np.isnan(out).all(axis=(0, 2))).tolist()
    assert out.shape == x.shape and cols == expected_band(u[0], 120, 1.0, 0.125) and rows == expected_band(u[1], 40, 1.0, 0.125)
    assert np.isnan(out).sum() == 4 * (len(cols) * 40 + len(rows) * 120 - len(cols) * len(rows))


def test_in_model_default_draws_are_three_torch_rands_per_band() -> None:
    """rng None on a tensor (the 2D model in training): per band, torch.rand(B) for the width, then for the start,
    then for apply, time band first: the draws (and so the mask distribution) of the former in-model mask."""
    b, shape = 32, (32, 3, 64, 128)
    x = torch.rand(shape) + 1.0
    torch.manual_seed(21)
    out = mask_spec(x, 0.5, 0.5, 0.0, max_frac=0.1, batched=True)
    after = torch.rand(1)
    torch.manual_seed(21)
    u = [torch.stack([torch.rand(b) for _ in range(3)], dim=1).double().numpy() for _ in range(2)]
    assert torch.equal(after, torch.rand(1))  # exactly 6 torch.rand(B) calls consumed, nothing else
    got = out.numpy()
    assert filled(got, -1, 0.0) == [expected_band(u[0][i], 128, 0.5, 0.1) for i in range(b)]
    assert filled(got, -2, 0.0) == [expected_band(u[1][i], 64, 0.5, 0.1) for i in range(b)]
    assert (got == 0).any() and (got != 0).any()
