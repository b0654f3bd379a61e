"""New model kinds and 2D inputs: WaveNet, EfficientNet-1D, CWT scalograms, the raw EEG as an image.

Each is built through the registry, declares its inputs, and learns: a few optimiser steps on a
fixed batch whose class is written into the signal lower the loss.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hbac.config import CWTParams, EffNet1DParams, ModelConfig, Raw2DParams, WaveNetParams
from hbac.engine.losses import kl_loss
from hbac.models import MODELS, build_model
from hbac.models.spec2d import raw_image
from hbac.signals.montage import CHBMIT_BANANA, montage_names

HMS_CH = montage_names("double_banana")
FS, T = 200.0, 1000  # 5 s windows keep the CPU tests fast
SMALL = {
    "wavenet": ModelConfig(kind="wavenet", wavenet=WaveNetParams(channels=[4, 8], dilation_layers=[3, 3], downsample=4, hidden=16), drop_rate=0.0),
    "effnet1d": ModelConfig(
        kind="effnet1d", effnet1d=EffNet1DParams(stem=8, widths=[8, 16], depths=[1, 1], strides=[4, 4], expand=2, head=32), drop_rate=0.0
    ),
    "cwt": ModelConfig(
        kind="2d", backbone="tf_mobilenetv3_small_minimal_100", inputs=["eeg_cwt"], cwt=CWTParams(fmin=1.0, fmax=20.0, n_freqs=16, out_height=32, out_width=64), drop_rate=0.0
    ),
    "raw2d": ModelConfig(kind="2d", backbone="tf_mobilenetv3_small_minimal_100", inputs=["eeg_raw2d"], raw2d=Raw2DParams(segments=4, out_width=128), drop_rate=0.0),
}


def class_batch(b: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Montage (b, 16, T) µV: class 0 carries a 3 Hz rhythm, class 1 a 12 Hz rhythm, over noise; one-hot targets (b, 2)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(b) % 2
    t = torch.arange(T) / FS
    f = torch.where(y == 0, 3.0, 12.0)[:, None, None]
    eeg = 40 * torch.sin(2 * np.pi * f * t + torch.rand(b, len(HMS_CH), 1, generator=g) * 6) + 10 * torch.randn(b, len(HMS_CH), T, generator=g)
    return {"eeg": eeg, "target": torch.nn.functional.one_hot(y, 2).float()}


def test_registry_has_new_kinds_and_inputs_declared() -> None:
    assert {"wavenet", "effnet1d"} <= set(MODELS)
    for name, cfg in SMALL.items():
        m = build_model(cfg, 2, HMS_CH, FS, T)
        assert m.input_keys == ("eeg",), name  # all four read only the raw montage
        assert m.num_features > 0


@pytest.mark.parametrize("name", list(SMALL))
def test_new_models_learn(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(SMALL[name], 2, HMS_CH, FS, T)
    batch = class_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(12):
        loss = kl_loss(model(batch), batch["target"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert min(losses[-3:]) < 0.7 * losses[0], f"{name}: loss {losses[0]:.3f} → {losses[-1]:.3f}"


@pytest.mark.parametrize("kind", ["wavenet", "effnet1d"])
def test_1d_kinds_any_channel_set(kind: str) -> None:
    """CHB-MIT's 18 channels (no exact 4-chain match needed) and short windows both work."""
    m = build_model(SMALL[kind], 2, CHBMIT_BANANA, 256.0, 512)
    out = m({"eeg": torch.randn(3, len(CHBMIT_BANANA), 512) * 30})
    assert out.shape == (3, 2) and torch.isfinite(out).all()


def test_1d_kinds_fixed_scaling_keeps_amplitude() -> None:
    """Fixed µV scaling: a 4x louder input is a different input (per-sample std scaling would hide it)."""
    torch.manual_seed(0)
    m = build_model(SMALL["effnet1d"], 2, HMS_CH, FS, T).eval()
    x = class_batch()["eeg"][:2]
    with torch.no_grad():
        assert not torch.allclose(m({"eeg": x}), m({"eeg": 4 * x}), atol=1e-4)


def test_raw_image_layout() -> None:
    """Channel c's j-th piece of the window is row c·segments + j; values are µV / scale."""
    eeg = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 8)
    img = raw_image(eeg, segments=2, scale_uv=2.0)
    assert img.shape == (2, 6, 4)
    torch.testing.assert_close(img[1, 2 * 2 + 1], eeg[1, 2, 4:8] / 2.0)
    torch.testing.assert_close(img[0, 0], eeg[0, 0, :4] / 2.0)


def test_2d_inputs_stack() -> None:
    cfg = ModelConfig(
        kind="2d", backbone="resnet18", inputs=["kaggle_spec", "eeg_cwt", "eeg_raw2d"],
        cwt=CWTParams(n_freqs=8, out_height=16, out_width=64), raw2d=Raw2DParams(segments=2),
    )
    m = build_model(cfg, 6, HMS_CH, FS, T)
    assert m.input_keys == ("eeg", "kaggle_spec")
    batch = {"eeg": torch.randn(2, 16, T), "kaggle_spec": torch.randn(2, 4, 100, 300)}
    img = m.image(batch)
    # kaggle 200 rows + CWT chains 2x2 of 16 rows + raw 16 channels x 2 segments, all at the raw image's width
    assert img.shape == (2, 3, 200 + 32 + 32, T // 2)


def test_unknown_2d_input_is_named() -> None:
    with pytest.raises(ValueError, match="eeg_wavelet"):
        build_model(ModelConfig(kind="2d", backbone="resnet18", inputs=["eeg_wavelet"]), 6, HMS_CH, FS, T)
