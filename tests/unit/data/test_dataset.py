"""`WindowDataset` over a hand-written cache: EEG windows, declared extra inputs, hemisphere flip."""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from hbac.cache.reader import Cache, eeg_slice, extra_slice
from hbac.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig
from hbac.data.augment import hemisphere_flip, mask_spec
from hbac.data.dataset import WindowDataset, model_extras
from hbac.datasets.kaggle_spec import kaggle_spec_regions

_spec = importlib.util.spec_from_file_location("_reader_fixture", Path(__file__).parents[1] / "cache" / "test_reader.py")
_reader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reader)  # reuse its write_cache (hbac's tests are not a package)


@pytest.fixture()
def cache(tmp_path: Path) -> Cache:
    _reader.write_cache(tmp_path / "c")
    return Cache(tmp_path / "c")


def test_items_are_the_cache_windows_and_the_declared_model_array(cache: Cache) -> None:
    ds = WindowDataset(cache, cache.samples, extras=["kaggle_spec"])
    assert len(ds) == 4
    for i in range(4):
        item = ds[i]
        np.testing.assert_array_equal(item["eeg"].numpy(), cache.window(i))
        raw = cache.extra_window("kaggle_spec", i)
        expect = kaggle_spec_regions(raw if raw is not None else np.full((300, 400), np.nan, np.float32))
        np.testing.assert_array_equal(item["kaggle_spec"].numpy(), expect)  # (4, 100, 300) raw rows, normalised by the model
        assert item["kaggle_spec"].shape == (4, 100, 300) and int(item["index"]) == i
    np.testing.assert_allclose(ds[1]["target"].numpy(), [0.5, 0.5])
    assert set(WindowDataset(cache, cache.samples)[0]) == {"eeg", "target", "weight", "index"}


def test_kaggle_spec_masks_are_the_shared_mask_with_nan_fill(cache: Cache) -> None:
    """The Dataset masks its Kaggle spectrogram item with `augment.mask_spec` (fill NaN, bands ≤ 1/8 of an axis),
    drawn from numpy's global state (seeded by the trainer and per loader worker)."""
    plain = WindowDataset(cache, cache.samples, extras=["kaggle_spec"])[0]["kaggle_spec"].numpy()
    ds = WindowDataset(cache, cache.samples, extras=["kaggle_spec"], augment=AugmentConfig(time_mask=1.0, freq_mask=1.0))
    np.random.seed(7)
    masked = ds[0]["kaggle_spec"].numpy()
    np.random.seed(7)
    np.testing.assert_array_equal(masked, mask_spec(plain, 1.0, 1.0, np.nan, max_frac=0.125))
    cols, rows = np.isnan(masked).all(axis=(0, 1)), np.isnan(masked).all(axis=(0, 2))
    assert 1 <= cols.sum() <= 300 // 8 + 1 and 1 <= rows.sum() <= 100 // 8 + 1  # one time band and one frequency band
    assert not np.isnan(plain).all(axis=(0, 1)).any()  # they were data before


def test_hemisphere_flip_permutes_the_extra_by_its_declared_permutation(cache: Cache) -> None:
    plain = WindowDataset(cache, cache.samples, extras=["kaggle_spec"])[0]["kaggle_spec"].numpy()
    flipped = WindowDataset(cache, cache.samples, extras=["kaggle_spec"], augment=AugmentConfig(hemisphere_flip=1.0))[0]["kaggle_spec"].numpy()
    np.testing.assert_array_equal(flipped, plain[[1, 0, 3, 2]])  # LL↔RL, LP↔RP


def test_data_path_and_batched_tta_path_flip_the_same_way(tmp_path: Path) -> None:
    """The Dataset's flip augmentation and the batched flip that TTA applies on the model's device give the same tensors."""
    _reader.write_cache(tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    meta["channels"] = ["Fp1-F7", "Fz-Cz", "Fp2-F8"]  # a mirrored pair around a midline channel: eeg perm [2, 1, 0]
    (tmp_path / "c" / "meta.json").write_text(json.dumps(meta))
    cache = Cache(tmp_path / "c")
    plain = WindowDataset(cache, cache.samples, extras=["kaggle_spec"])
    data_path = WindowDataset(cache, cache.samples, extras=["kaggle_spec"], augment=AugmentConfig(hemisphere_flip=1.0))
    np.testing.assert_array_equal(plain.flip_perms["eeg"], [2, 1, 0])
    batch = default_collate([plain[i] for i in range(len(plain))])
    gpu_path = hemisphere_flip(batch, plain.flip_perms, axis=1)  # what predict_loader does with tta.hemisphere_flip
    flipped = default_collate([data_path[i] for i in range(len(data_path))])
    for key in ("eeg", "kaggle_spec"):
        assert not torch.equal(batch[key], flipped[key])  # the flip moved something
        torch.testing.assert_close(gpu_path[key], flipped[key], rtol=0, atol=0, equal_nan=True)
    np.testing.assert_array_equal(flipped["eeg"][:, 0].numpy(), batch["eeg"][:, 2].numpy())  # Fp1-F7 ← Fp2-F8


def _reference_item(ds: WindowDataset, i: int) -> dict[str, np.ndarray]:
    """An item the plain way (a copy per step, the flip as a separate permutation): what the fused path must equal."""
    aug, shift = ds.augment, ds.view_shift
    if aug.time_shift_s > 0:
        m = int(aug.time_shift_s * ds.fs)
        shift += int(np.random.randint(-m, m + 1))
    eeg_row, rows = ds._rows(i)
    item = {"eeg": eeg_slice(ds.cache.eeg, eeg_row + int(ds.crop_offset[i]), ds.eeg_lo[i], ds.eeg_hi[i], int(ds.n_times[i]), shift)}
    for name, x in ds.extras.items():
        arr = x.to_input(extra_slice(ds.cache.extra(name), *rows[name], x.window_rows))
        item[name] = mask_spec(arr, aug.time_mask, aug.freq_mask, fill=np.nan, max_frac=0.125) if x.masks else arr
    if np.random.rand() < aug.hemisphere_flip:
        item = hemisphere_flip(item, ds.flip_perms, axis=0)
    return {k: np.ascontiguousarray(v) for k, v in item.items()}


def test_augmented_items_equal_the_plain_computation(tmp_path: Path) -> None:
    """Time shift, masks and flip (fused into the one copy from the cache) give the values of the step-by-step path."""
    _reader.write_cache(tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    meta["channels"] = ["Fp1-F7", "Fz-Cz", "Fp2-F8"]  # eeg flip permutation [2, 1, 0]
    (tmp_path / "c" / "meta.json").write_text(json.dumps(meta))
    cache = Cache(tmp_path / "c")
    aug = AugmentConfig(hemisphere_flip=0.5, time_mask=0.7, freq_mask=0.7, time_shift_s=0.5)
    ds = WindowDataset(cache, cache.samples, extras=["kaggle_spec"], augment=aug)
    flips = 0
    for seed in range(12):
        for i in range(len(ds)):
            np.random.seed(seed)
            item = ds[i]
            np.random.seed(seed)
            ref = _reference_item(ds, i)
            for k, v in ref.items():
                got = item[k].numpy()
                assert got.flags["C_CONTIGUOUS"] and got.dtype == np.float32
                np.testing.assert_array_equal(got, v)
            flips += not np.array_equal(item["eeg"].numpy(), cache.window(i, 0)) and np.isnan(item["kaggle_spec"].numpy()).any()
            assert item["target"].dtype == torch.float32 and item["weight"].shape == () and int(item["index"]) == i
    assert flips  # the augmentations did change items


def test_an_extra_the_cache_lacks_is_a_named_error(cache: Cache) -> None:
    with pytest.raises(KeyError, match="model input 'eeg_image' needs a cache that holds it"):
        WindowDataset(cache, cache.samples, extras=["eeg_image"])


def test_model_extras_are_the_declared_inputs_the_model_names() -> None:
    def exp(dataset: str, kind: str, inputs: list[str]) -> ExperimentConfig:
        return ExperimentConfig(name="e", data=DataConfig(name="c", dataset=dataset), model=ModelConfig(kind=kind, inputs=inputs))

    assert model_extras(exp("hms", "2d", ["kaggle_spec", "eeg_spec"])) == ["kaggle_spec"]
    assert model_extras(exp("hms", "2d", ["eeg_spec"])) == []
    assert model_extras(exp("hms", "1d", ["kaggle_spec"])) == []  # model.inputs is read by 2D / multimodal models only
    assert model_extras(exp("chbmit", "multimodal", ["kaggle_spec", "eeg_spec"])) == []  # CHB-MIT declares no extras


def test_one_channel_items_are_owned_tensors_without_a_warning(tmp_path: Path) -> None:
    """A one-channel window's transpose is contiguous as sliced from the read-only cache memmap: `eeg_slice` copies it
    anyway, so torch does not warn "the given NumPy array is not writable" (the single-channel datasets hit this)
    and the tensor owns its data."""
    _reader.write_cache(tmp_path / "c")
    eeg = np.arange(70, dtype=np.float32)[:, None] * 10  # eeg[t, 0] = 10 t
    np.save(tmp_path / "c" / "eeg.npy", eeg)
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    meta.update(channels=["x"], eeg_shape=[70, 1])
    (tmp_path / "c" / "meta.json").write_text(json.dumps(meta))
    cache = Cache(tmp_path / "c")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        item = WindowDataset(cache, cache.samples)[0]
    np.testing.assert_array_equal(item["eeg"].numpy(), cache.window(0))
    assert not np.shares_memory(item["eeg"].numpy(), cache.eeg)  # writing to it cannot touch the read-only map
    assert not np.shares_memory(cache.window(0), cache.eeg)  # the one slicer: Cache.window too
