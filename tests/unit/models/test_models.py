"""Models: every backbone family, every input mix, 1D poolings, multimodal, pretrained loading, flips."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import timm
import torch

from hbac.config import ModelConfig, OneDParams, SpecParams
from hbac.data.augment import flip_perms, hemisphere_flip
from hbac.datasets.hms import KAGGLE_SPEC
from hbac.engine.losses import kl_loss
from hbac.models import MODELS, build_model, count_parameters
from hbac.signals.montage import CHBMIT_BANANA, montage_names
from hbac.signals.spectrogram import EEGSpectrogram

HMS_CH = montage_names("double_banana")  # LL, RL, LP, RP × 4 pairs
FS, T = 200.0, 2000
OH, OW = 32, 64  # small spectrogram images keep CPU tests fast
# the tiny configs' backbone, for tests about our image / head / masks rather than the backbone (a resnet18
# step costs 6x more on a CPU); the pretrained-weight tests load resnet18 files
SMALL = "tf_mobilenetv3_small_minimal_100"


def small_spec(kind: str = "stft") -> SpecParams:
    return SpecParams(kind=kind, n_fft=256, hop=25, n_mels=32, fmax=20.0, out_height=OH, out_width=OW)


def small_oned(pooling: str = "avg") -> OneDParams:
    return OneDParams(channels=[8, 16, 24], kernel_size=5, blocks_per_stage=1, downsample=4, pooling=pooling, hidden=16)


def hms_batch(b: int = 2, seed: int = 0, kaggle: tuple[int, int] = (100, 300)) -> dict[str, torch.Tensor]:
    """Montage (b, 16, T) µV and Kaggle regions (b, 4, *kaggle); smaller `kaggle` keeps backbones fast."""
    g = torch.Generator().manual_seed(seed)
    return {
        "eeg": torch.randn(b, len(HMS_CH), T, generator=g) * 50.0,
        "kaggle_spec": torch.randn(b, 4, *kaggle, generator=g).clamp(-1, 1),
    }


def cfg_2d(backbone: str = "resnet18", inputs: list[str] | None = None, kind: str = "stft") -> ModelConfig:
    return ModelConfig(kind="2d", backbone=backbone, inputs=inputs or ["eeg_spec"], spec=small_spec(kind), drop_rate=0.1)


def check_forward_backward(model: torch.nn.Module, batch: dict[str, torch.Tensor], n_classes: int) -> None:
    model.train()
    out = model(batch)
    assert out.shape == (batch["eeg"].shape[0], n_classes)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "some parameters received no gradient"
    assert sum(float(g.abs().sum()) for g in grads) > 0


# --------------------------------------------------------------------------- 2D


@pytest.mark.parametrize("backbone", ["efficientnet_b0", "tf_efficientnetv2_b0", "convnext_atto", "mixnet_s", "resnet18", "tf_mobilenetv3_small_minimal_100"])
def test_backbone_families_forward_backward(backbone: str) -> None:
    model = build_model(cfg_2d(backbone), 6, HMS_CH, FS, T)
    check_forward_backward(model, hms_batch(), 6)
    assert model.pool.p.grad is not None  # GeM exponent is learned


@pytest.mark.parametrize(
    "inputs, kind, shape",
    [
        (["kaggle_spec"], "stft", (40, 120)),
        (["eeg_spec"], "stft", (2 * OH, 2 * OW)),
        (["eeg_spec"], "mel", (2 * OH, 2 * OW)),
        (["kaggle_spec", "eeg_spec"], "mel", (40 + 2 * OH, 2 * OW)),
    ],
)
def test_2d_inputs(inputs: list[str], kind: str, shape: tuple[int, int]) -> None:
    model = build_model(cfg_2d(SMALL, inputs, kind), 6, HMS_CH, FS, T).eval()
    b = hms_batch(kaggle=(20, 60))  # real regions are (100, 300): see test_kaggle_tiles_regions_2x2
    img = model.image(b)
    assert img.shape == (2, 3, *shape)
    assert torch.equal(img[:, 0], img[:, 2])  # grey image replicated to in_chans
    with torch.no_grad():
        ref = model(b)
        # the output depends on exactly the inputs the config names
        for key, used in (("eeg", "eeg_spec" in inputs), ("kaggle_spec", "kaggle_spec" in inputs)):
            changed = dict(b, **{key: b[key].flip(-1) * 0.5})
            differs = not torch.allclose(model(changed), ref)
            assert differs == used, f"{key} used={used} but output differs={differs}"
    check_forward_backward(model, b, 6)


def test_kaggle_tiles_regions_2x2() -> None:
    model = build_model(cfg_2d(SMALL, ["kaggle_spec"]), 6, HMS_CH, FS, T)
    b = hms_batch()
    img = model.image(b)[:, 0]
    ks = b["kaggle_spec"]
    assert torch.equal(img[:, :100, :300], ks[:, 0])  # LL top-left
    assert torch.equal(img[:, :100, 300:], ks[:, 1])  # RL top-right
    assert torch.equal(img[:, 100:, :300], ks[:, 2])  # LP bottom-left
    assert torch.equal(img[:, 100:, 300:], ks[:, 3])  # RP bottom-right


def test_eeg_image_averages_each_chain() -> None:
    model = build_model(cfg_2d(SMALL, ["eeg_spec"], "stft"), 6, HMS_CH, FS, T).eval()
    b = hms_batch()
    img = model.image(b)[:, 0]
    spec = EEGSpectrogram(FS, **{k: getattr(small_spec("stft"), k) for k in vars(small_spec("stft"))})(b["eeg"])
    rl = [HMS_CH.index(n) for n in ("Fp2-F8", "F8-T4", "T4-T6", "T6-O2")]
    lp = [HMS_CH.index(n) for n in ("Fp1-F3", "F3-C3", "C3-P3", "P3-O1")]
    torch.testing.assert_close(img[:, :OH, OW:], spec[:, rl].mean(1))
    torch.testing.assert_close(img[:, OH:, :OW], spec[:, lp].mean(1))


def test_chbmit_channels_two_classes() -> None:
    fs, t = 256.0, 2560
    g = torch.Generator().manual_seed(1)
    b = {"eeg": torch.randn(2, 18, t, generator=g) * 30}
    for kind in ("2d", "1d", "multimodal"):
        cfg = ModelConfig(kind=kind, backbone=SMALL, inputs=["eeg_spec"], spec=small_spec("mel"), oned=small_oned("gru"))
        model = build_model(cfg, 2, CHBMIT_BANANA, fs, t)
        check_forward_backward(model, b, 2)
    m2d = build_model(ModelConfig(kind="2d", backbone=SMALL, inputs=["eeg_spec"], spec=small_spec()), 2, CHBMIT_BANANA, fs, t)
    assert m2d.layout == "chains"  # T7/P7/T8/P8 names are recognised as the banana chains
    ll = [CHBMIT_BANANA.index(n) for n in ("FP1-F7", "F7-T7", "T7-P7", "P7-O1")]
    rl = [CHBMIT_BANANA.index(n) for n in ("FP2-F8", "F8-T8", "T8-P8", "P8-O2")]
    assert m2d.chain_idx[0].tolist() == ll and m2d.chain_idx[1].tolist() == rl


def test_unknown_channel_set_is_tiled_in_grid() -> None:
    names = ["C3", "C4", "Cz", "O1", "O2"]  # no banana chains → grid of ceil(sqrt(5)) = 3 columns
    model = build_model(cfg_2d(SMALL, ["eeg_spec"]), 3, names, FS, T)
    b = {"eeg": torch.randn(2, 5, T)}
    img = model.image(b)[:, 0]
    assert model.layout == "grid" and img.shape == (2, 2 * OH, 3 * OW)
    assert torch.equal(img[:, OH:, 2 * OW:], torch.zeros(2, OH, OW))  # 6th tile is padding
    check_forward_backward(model, b, 3)


@pytest.mark.parametrize("kind", ["2d", "multimodal"])
def test_autocast_bf16_forward(kind: str) -> None:
    cfg = cfg_2d(SMALL, ["kaggle_spec", "eeg_spec"])
    cfg = dataclasses.replace(cfg, kind=kind, oned=small_oned("gru"))
    model = build_model(cfg, 6, HMS_CH, FS, T).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(hms_batch(kaggle=(20, 60)))
    assert out.shape == (2, 6) and torch.isfinite(out.float()).all()


def test_spec_augment_only_in_training() -> None:
    model = build_model(cfg_2d(SMALL, ["kaggle_spec", "eeg_spec"]), 6, HMS_CH, FS, T)
    model.set_spec_augment(time_mask=1.0, freq_mask=0.0)
    b = hms_batch(kaggle=(20, 60))
    model.train()
    img = model.image(b)[:, 0]
    eeg_part, kaggle_part = img[:, 40:], img[:, :40]
    zero_cols = (eeg_part == 0).all(dim=1)  # (B, W): a time mask zeros whole columns of every chain
    assert zero_cols.any(dim=1).all()
    assert not (eeg_part == 0).all(dim=2).any()  # no frequency mask asked for
    assert not (kaggle_part == 0).all(dim=1).any()  # kaggle_spec is masked by hbac.data, not here
    model.eval()
    assert not (model.image(b)[:, 0, 40:] == 0).all(dim=1).any()


def test_spec_augment_generator_makes_the_masks_reproducible() -> None:
    """The in-model masks (`data.augment.mask_spec`, fill 0) follow the generator given to set_spec_augment."""
    model = build_model(cfg_2d(SMALL, ["eeg_spec"]), 6, HMS_CH, FS, T).train()
    b = hms_batch()

    def image(seed: int) -> torch.Tensor:
        model.set_spec_augment(time_mask=1.0, freq_mask=1.0, rng=np.random.default_rng(seed))
        return model.image(b)

    a, a2, c = image(0), image(0), image(1)
    assert torch.equal(a, a2) and not torch.equal(a, c)
    assert ((a == 0).all(dim=2)).any() and ((a == 0).all(dim=3)).any()  # a zero column (time) and row (frequency)


# --------------------------------------------------------------------------- 1D and multimodal


@pytest.mark.parametrize("pooling", ["avg", "gru", "attention"])
@pytest.mark.parametrize("n_times", [T, 1999])
def test_1d_poolings(pooling: str, n_times: int) -> None:
    cfg = ModelConfig(kind="1d", oned=small_oned(pooling))
    model = build_model(cfg, 6, HMS_CH, FS, n_times)
    check_forward_backward(model, {"eeg": torch.randn(2, 16, n_times) * 100}, 6)


def test_1d_fixed_scaling_keeps_amplitude() -> None:
    cfg = ModelConfig(kind="1d", oned=small_oned("attention"))
    model = build_model(cfg, 6, HMS_CH, FS, T).eval()
    x = torch.randn(2, 16, T) * 30.0
    torch.testing.assert_close(model.scale(x), x / 32.0)  # a constant, not the sample's own std
    with torch.no_grad():
        assert not torch.allclose(model({"eeg": x}), model({"eeg": x * 4.0}), atol=1e-3)  # a 4x larger EEG is a different input


def test_multimodal_uses_both_branches() -> None:
    cfg = ModelConfig(kind="multimodal", backbone="resnet18", inputs=["kaggle_spec", "eeg_spec"], spec=small_spec("mel"), oned=small_oned("gru"))
    model = build_model(cfg, 6, HMS_CH, FS, T)
    check_forward_backward(model, hms_batch(kaggle=(20, 60)), 6)
    assert model.spec2d.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.eeg1d.stem[0].weight.grad.abs().sum() > 0
    assert set(model.input_keys) == {"eeg", "kaggle_spec"}


def test_overfit_tiny_batch() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(kind="1d", oned=small_oned("avg"), drop_rate=0.0)
    model = build_model(cfg, 6, HMS_CH, FS, 400)
    x = torch.randn(8, 16, 400) * 40
    target = torch.eye(6)[torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(30):
        loss = kl_loss(model({"eeg": x}), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


# --------------------------------------------------------------------------- registry, errors, parameters


def test_registry_and_errors() -> None:
    assert set(MODELS) == {"2d", "1d", "wavenet", "effnet1d", "multimodal"}
    with pytest.raises(ValueError, match="features"):
        build_model(ModelConfig(kind="features"), 6, HMS_CH, FS, T)
    with pytest.raises(ValueError, match="model.inputs.*'wavelet'"):
        build_model(ModelConfig(kind="2d", backbone=SMALL, inputs=["wavelet"]), 6, HMS_CH, FS, T)
    with pytest.raises(ValueError, match="model.spec.n_fft"):
        build_model(ModelConfig(kind="2d", backbone=SMALL, inputs=["eeg_spec"]), 6, HMS_CH, FS, 400)
    with pytest.raises(KeyError, match="kaggle_spec"):
        build_model(cfg_2d(SMALL, ["kaggle_spec"]), 6, HMS_CH, FS, T)({"eeg": torch.zeros(1, 16, T)})


def test_count_parameters() -> None:
    model = build_model(ModelConfig(kind="1d", oned=small_oned("avg")), 6, HMS_CH, FS, T)
    manual = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == manual
    model.stem[0].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == manual - model.stem[0].weight.numel()


# --------------------------------------------------------------------------- pretrained weights


def _distinct_resnet_file(tmp_path, suffix: str = ".pth"):
    src = timm.create_model("resnet18", pretrained=False, num_classes=7)
    with torch.no_grad():
        src.conv1.weight.fill_(0.125)
        src.layer1[0].conv1.weight.fill_(-0.375)
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    else:
        torch.save(src.state_dict(), path)
    return path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_loads_local_file(tmp_path, suffix: str) -> None:
    path = _distinct_resnet_file(tmp_path, suffix)
    cfg = cfg_2d("resnet18")
    cfg = dataclasses.replace(cfg, pretrained=True, pretrained_path=str(path))
    model = build_model(cfg, 6, HMS_CH, FS, T)
    assert torch.all(model.backbone.layer1[0].conv1.weight == -0.375)
    assert torch.all(model.backbone.conv1.weight == 0.125)
    # the 1000→7-class classifier of the source is dropped; our head keeps its own shape
    assert model.head.weight.shape == (6, model.num_features)


def test_pretrained_adapts_first_conv(tmp_path) -> None:
    path = _distinct_resnet_file(tmp_path)
    cfg = cfg_2d("resnet18")
    cfg = dataclasses.replace(cfg, pretrained=True, pretrained_path=str(path), in_chans=1)
    model = build_model(cfg, 6, HMS_CH, FS, T)
    assert model.backbone.conv1.weight.shape[1] == 1
    torch.testing.assert_close(model.backbone.conv1.weight, torch.full_like(model.backbone.conv1.weight, 3 * 0.125))
    assert model.image(hms_batch()).shape[1] == 1


def test_pretrained_errors(tmp_path) -> None:
    cfg = cfg_2d("resnet18")
    cfg = dataclasses.replace(cfg, pretrained=True)
    with pytest.raises(ValueError, match="pretrained_path"):
        build_model(cfg, 6, HMS_CH, FS, T)
    missing = tmp_path / "nope" / "weights.pth"
    cfg = dataclasses.replace(cfg, pretrained_path=str(missing))
    with pytest.raises(FileNotFoundError, match="nope/weights.pth"):
        build_model(cfg, 6, HMS_CH, FS, T)
    torch.save(timm.create_model("convnext_atto", pretrained=False).state_dict(), tmp_path / "convnext.pth")
    cfg = dataclasses.replace(cfg, pretrained_path=str(tmp_path / "convnext.pth"))
    with pytest.raises(ValueError, match="no weights"):
        build_model(cfg, 6, HMS_CH, FS, T)


# --------------------------------------------------------------------------- hemisphere flip


def test_hemisphere_flip_involution_and_swap() -> None:
    b = hms_batch(3)
    perms = flip_perms(HMS_CH, [KAGGLE_SPEC])  # the GPU/TTA path: the HMS adapter's declared region swap
    f = hemisphere_flip(b, perms, axis=1)
    ff = hemisphere_flip(f, perms, axis=1)
    assert torch.equal(ff["eeg"], b["eeg"]) and torch.equal(ff["kaggle_spec"], b["kaggle_spec"])
    for left, right in zip(("Fp1-F7", "F7-T3", "T3-T5", "T5-O1"), ("Fp2-F8", "F8-T4", "T4-T6", "T6-O2")):
        assert torch.equal(f["eeg"][:, HMS_CH.index(left)], b["eeg"][:, HMS_CH.index(right)])
        assert torch.equal(f["eeg"][:, HMS_CH.index(right)], b["eeg"][:, HMS_CH.index(left)])
    assert torch.equal(f["kaggle_spec"][:, 0], b["kaggle_spec"][:, 1])  # LL ← RL
    assert torch.equal(f["kaggle_spec"][:, 3], b["kaggle_spec"][:, 2])  # RP ← LP
    assert b["eeg"] is not f["eeg"]  # input not modified in place


def test_hemisphere_flip_mask_and_midline() -> None:
    names = CHBMIT_BANANA
    b = {"eeg": torch.randn(2, 18, 100), "target": torch.rand(2, 2)}
    f = hemisphere_flip(b, flip_perms(names), axis=1, mask=torch.tensor([True, False]))
    assert torch.equal(f["eeg"][1], b["eeg"][1])  # not selected
    assert torch.equal(f["eeg"][0, names.index("FP1-F7")], b["eeg"][0, names.index("FP2-F8")])
    assert torch.equal(f["eeg"][0, names.index("FZ-CZ")], b["eeg"][0, names.index("FZ-CZ")])  # midline stays
    assert f["target"] is b["target"]


def test_model_flip_swaps_image_tiles() -> None:
    model = build_model(cfg_2d(SMALL, ["kaggle_spec", "eeg_spec"]), 6, HMS_CH, FS, T).eval()
    b = hms_batch()
    img, img_f = model.image(b)[:, 0], model.image(hemisphere_flip(b, flip_perms(HMS_CH, [KAGGLE_SPEC]), axis=1))[:, 0]
    w = img.shape[-1] // 2
    torch.testing.assert_close(img_f[..., :w], img[..., w:])
    torch.testing.assert_close(img_f[..., w:], img[..., :w])
