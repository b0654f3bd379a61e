"""2D model: spectrogram image (Kaggle spectrograms and/or EEG spectrograms) → timm backbone → GeM head.

Image layout (one grey image, replicated to `in_chans`):

- `kaggle_spec` (B, 4, 100, 300) raw power, regions LL, RL, LP, RP → normalised in the model
  (`models.inputs.normalise_kaggle_spec`) → 2x2 tiles [[LL, RL], [LP, RP]] → (200, 600).
- `eeg_spec`: `signals.EEGSpectrogram` on the montage → (B, C, H, W). When the channels contain
  the four double-banana chains (HMS or CHB-MIT names) the 4 pairs of each chain are averaged
  and the chains tiled 2x2 like the Kaggle image → (2H, 2W); other channel sets are tiled in a
  grid of ceil(sqrt(C)) columns. Extra channels (e.g. the central Fz-Cz chain) are left out of
  the chain image.
- `eeg_cwt`: `signals.MorletCWT` scalograms of the montage, laid out exactly like `eeg_spec`.
- `eeg_raw2d`: the raw montage itself as an image (`raw_image`): each channel's window cut into
  `raw2d.segments` consecutive pieces stacked as rows, channels under each other →
  (C·segments, T / segments), scaled by a fixed µV factor, optionally resized.
- several inputs: each image is resized to the last one's width and they are stacked vertically.

Left/right chains sit in the left/right tile columns, so a hemisphere flip of the inputs is a
horizontal swap of tiles.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import adapt_input_conv, load_state_dict

from hbac.config import ModelConfig, to_dict
from hbac.data.augment import mask_spec
from hbac.errors import WeightsError
from hbac.models.inputs import InputStage
from hbac.models.layers import GeM
from hbac.models.weights import weights_file
from hbac.signals.cwt import MorletCWT
from hbac.signals.montage import chain_indices
from hbac.signals.spectrogram import EEGSpectrogram

log = logging.getLogger(__name__)

INPUTS_2D = ("kaggle_spec", "eeg_spec", "eeg_cwt", "eeg_raw2d")
def tile_2x2(x: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) → (B, 2H, 2W) with tiles [[0, 1], [2, 3]]."""
    b, n, h, w = x.shape
    if n != 4:
        raise ValueError(f"tile_2x2 needs 4 tiles, got {n}")
    return x.reshape(b, 2, 2, h, w).permute(0, 1, 3, 2, 4).reshape(b, 2 * h, 2 * w)


def tile_grid(x: torch.Tensor, n_cols: int) -> torch.Tensor:
    """(B, N, H, W) → (B, rows·H, n_cols·W), row-major, zero tiles pad the last row."""
    b, n, h, w = x.shape
    rows = math.ceil(n / n_cols)
    if rows * n_cols > n:
        x = torch.cat([x, x.new_zeros(b, rows * n_cols - n, h, w)], dim=1)
    return x.reshape(b, rows, n_cols, h, w).permute(0, 1, 3, 2, 4).reshape(b, rows * h, n_cols * w)


def raw_image(eeg: torch.Tensor, segments: int, scale_uv: float) -> torch.Tensor:
    """(B, C, T) µV → (B, C·segments, T // segments) image: channel c's piece j is row c·segments + j."""
    b, c, t = eeg.shape
    n = t // segments
    if n < 1:
        raise ValueError(f"model.raw2d.segments: {segments} segments of a {t}-sample window leave nothing")
    x = eeg[..., : n * segments].float() / scale_uv
    return x.reshape(b, c * segments, n)


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a local state dict (.pth/.pt/.bin/.safetensors; unwraps `state_dict`/`model` and our checkpoints)."""

    sd = load_state_dict(str(path), use_ema=True, device="cpu")
    if any(k.startswith("backbone.") for k in sd):  # an hbac checkpoint: keep only its backbone
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    return sd


def load_pretrained(backbone: nn.Module, path: Optional[str], in_chans: int, name: str = "BACKBONE") -> None:
    """Load local weights into a headless timm backbone `name`: classifier keys dropped, first conv adapted to `in_chans`."""

    if path is None:
        raise ValueError(f"model.pretrained is true but model.pretrained_path is not set (weights are never downloaded); "
                         f"save them with `python -m hbac weights fetch --backbone {name}` and set pretrained_path: {weights_file(name)}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"model.pretrained_path: weights file not found: {p}; fetch it where a network is with "
                           f"`python -m hbac weights fetch --backbone {name} --out {p.parent}` (it saves {p.parent / (name + '.pth')})")
    sd = _load_weights_file(p)
    own = backbone.state_dict()
    keep: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for k, v in sd.items():
        if k not in own:
            dropped.append(k)  # classifier / head of the source model
        elif v.shape == own[k].shape:
            keep[k] = v
        elif v.ndim == 4 and v.shape[0] == own[k].shape[0] and v.shape[2:] == own[k].shape[2:]:
            keep[k] = adapt_input_conv(in_chans, v, base_chans=v.shape[1])
            log.info("adapted %s from %d to %d input channels", k, v.shape[1], in_chans)
        else:
            dropped.append(k)
            log.warning("pretrained %s: shape %s does not fit %s; skipped", k, tuple(v.shape), tuple(own[k].shape))
    if not keep:
        raise ValueError(f"model.pretrained_path: no weights in {p} match this backbone (wrong architecture?)")
    missing = [k for k in own if k not in keep]
    backbone.load_state_dict(keep, strict=False)
    log.info("loaded %d tensors from %s (%d dropped, %d left at init)", len(keep), p, len(dropped), len(missing))
    if missing:
        log.warning("pretrained weights lack %d backbone tensors, e.g. %s", len(missing), missing[:3])


class Spec2DModel(nn.Module):
    """Spectrogram image → timm backbone → GeM → dropout → Linear: batch → logits (B, n_classes)."""

    def __init__(
        self,
        cfg: ModelConfig,
        n_classes: int,
        channels: Sequence[str],
        fs: float,
        n_times: Optional[int] = None,
        head: bool = True,
        window_filter: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.channels = list(channels)
        self.n_classes = n_classes
        self.input_stage = InputStage(fs, window_filter, cfg.kaggle_spec_norm)
        self.inputs = list(cfg.inputs)
        if not self.inputs:
            raise ValueError("model.inputs: empty; use kaggle_spec and/or eeg_spec")
        for name in self.inputs:
            if name not in INPUTS_2D:
                raise ValueError(f"model.inputs: unknown input {name!r} (allowed: {', '.join(INPUTS_2D)})")
        self.input_keys = tuple(sorted({"kaggle_spec" if i == "kaggle_spec" else "eeg" for i in self.inputs}))
        self.in_chans = cfg.in_chans
        if cfg.image_size is not None and (len(cfg.image_size) != 2 or min(cfg.image_size) < 8):
            raise ValueError(f"model.image_size: expected [height, width] of at least 8 pixels, got {cfg.image_size}")
        self.image_size: Optional[tuple[int, int]] = tuple(cfg.image_size) if cfg.image_size is not None else None  # type: ignore[assignment]
        self.time_mask = 0.0
        self.freq_mask = 0.0
        self.mask_rng: Optional[np.random.Generator] = None

        self.spec: Optional[EEGSpectrogram] = None
        self.cwt: Optional[MorletCWT] = None
        self.raw2d = cfg.raw2d
        self.register_buffer("chain_idx", None, persistent=False)  # (4, 4) pair indices per chain
        self.layout = "none"
        if "eeg_spec" in self.inputs:
            sp = to_dict(cfg.spec)
            if n_times is not None and sp["n_fft"] // 2 >= n_times:
                raise ValueError(f"model.spec.n_fft: {sp['n_fft']} is too long for {n_times}-sample windows")
            if sp["win_length"] is not None and not 0 < sp["win_length"] <= sp["n_fft"]:
                raise ValueError(f"model.spec.win_length: {sp['win_length']} must be in 1 … n_fft ({sp['n_fft']})")
            self.spec = EEGSpectrogram(fs, **sp)
        if "eeg_cwt" in self.inputs:
            self.cwt = MorletCWT(fs, **to_dict(cfg.cwt))
        if "eeg_raw2d" in self.inputs and cfg.raw2d.segments < 1:
            raise ValueError(f"model.raw2d.segments: must be >= 1, got {cfg.raw2d.segments}")
        if self.spec is not None or self.cwt is not None:
            idx = chain_indices(self.channels)
            if idx is not None:
                self.register_buffer("chain_idx", torch.tensor(idx, dtype=torch.long), persistent=False)
                self.layout = "chains"
            else:
                self.layout = "grid"
                self.grid_cols = math.ceil(math.sqrt(len(self.channels)))
            log.debug("eeg_spec layout: %s for %d channels", self.layout, len(self.channels))

        self.backbone = timm.create_model(
            cfg.backbone,
            pretrained=False,  # never touches the network; weights come from a local file below
            num_classes=0,
            global_pool="",
            in_chans=cfg.in_chans,
            drop_rate=0.0,  # dropout lives in our head
        )
        if cfg.pretrained:
            load_pretrained(self.backbone, cfg.pretrained_path, cfg.in_chans, cfg.backbone)
        self.pool = GeM(cfg.gem_p)
        # forward_head(pre_logits=True) keeps any head conv (MobileNetV3's conv_head: 576 → 1024)
        self.num_features = int(getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features)
        # without a head (multimodal branch) the caller owns dropout
        self.drop: nn.Module = nn.Dropout(cfg.drop_rate) if head else nn.Identity()
        self.head: nn.Module = nn.Linear(self.num_features, n_classes) if head else nn.Identity()

    def set_spec_augment(self, time_mask: float = 0.0, freq_mask: float = 0.0, rng: Optional[np.random.Generator] = None) -> None:
        """Probabilities of one random time / frequency mask per sample on the EEG spectrogram, training mode only.

        Only the in-model images (`eeg_spec`, `eeg_cwt`) are masked here, because they only exist inside the
        model; `hbac.data` masks `kaggle_spec` when it loads it. Both use `hbac.data.augment.mask_spec`.
        `rng`: the masks' generator; None draws from torch's global one on the model's device (reseeded every epoch).
        """
        self.time_mask, self.freq_mask = float(time_mask), float(freq_mask)
        self.mask_rng = rng

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # per sample, bands up to 1/10 of an axis, fill 0: the mean of the per-sample standardised log power
            x = mask_spec(x, self.time_mask, self.freq_mask, fill=0.0, max_frac=0.1, batched=True, rng=self.mask_rng)
        return x

    def _batch_key(self, batch: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        if key not in batch:
            raise KeyError(f"model input {key!r} missing from batch (keys: {sorted(batch)})")
        return batch[key]

    def eeg_image(self, eeg: torch.Tensor, transform: Optional[nn.Module] = None) -> torch.Tensor:
        """(B, C, T) montage → (B, H', W') EEG-spectrogram (or CWT) image (chains 2x2 or channel grid), fp32."""
        transform = transform if transform is not None else self.spec
        assert transform is not None
        s = self._augment(transform(eeg))  # (B, C, H, W) fp32
        if self.chain_idx is not None:
            b, _, h, w = s.shape
            s = s.index_select(1, self.chain_idx.flatten()).reshape(b, 4, 4, h, w).mean(dim=2)
            return tile_2x2(s)
        return tile_grid(s, self.grid_cols)

    def kaggle_image(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, 4, 100, 300) normalised Kaggle spectrogram regions → (B, 200, 600) image."""
        return tile_2x2(spec.float())

    def raw2d_image(self, eeg: torch.Tensor) -> torch.Tensor:
        """(B, C, T) montage → (B, H, W) raw-signal image (`raw_image`, then the configured resize), fp32."""
        p = self.raw2d
        img = raw_image(eeg, p.segments, p.scale_uv)
        if p.out_height or p.out_width:
            size = (p.out_height or img.shape[-2], p.out_width or img.shape[-1])
            img = F.interpolate(img[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return img

    def image(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch → (B, in_chans, H, W) backbone input."""
        parts = []
        if "kaggle_spec" in self.inputs:
            parts.append(self.kaggle_image(self._batch_key(batch, "kaggle_spec")))
        for name in self.inputs:
            if name == "eeg_spec":
                parts.append(self.eeg_image(self._batch_key(batch, "eeg"), self.spec))
            elif name == "eeg_cwt":
                parts.append(self.eeg_image(self._batch_key(batch, "eeg"), self.cwt))
            elif name == "eeg_raw2d":
                parts.append(self.raw2d_image(self._batch_key(batch, "eeg")))
        if len(parts) > 1:
            width = parts[-1].shape[-1]
            parts = [
                p if p.shape[-1] == width else F.interpolate(p[:, None], size=(p.shape[-2], width), mode="bilinear", align_corners=False)[:, 0]
                for p in parts
            ]
        img = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        if self.image_size is not None and tuple(img.shape[-2:]) != self.image_size:
            img = F.interpolate(img[:, None], size=self.image_size, mode="bilinear", align_corners=False)[:, 0]
        return img[:, None].expand(-1, self.in_chans, -1, -1)

    def cam_layers(self) -> dict[str, nn.Module]:
        """Grad-CAM target (hbac.explain): the backbone's last convolution, whose map still has image geometry."""
        convs = [m for m in self.backbone.modules() if isinstance(m, nn.Conv2d)]
        return {"2d": convs[-1]} if convs else {}

    def forward_image(self, img: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) backbone image → logits (B, n_classes) (or features without a head); used to attribute to the image."""
        return self.head(self.drop(self.features_from_image(img)))

    def features_from_image(self, img: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) backbone image → pooled features (B, num_features)."""
        if img.is_cuda:  # NHWC matches the channels_last weights set by engine.runtime.place_model
            img = img.contiguous(memory_format=torch.channels_last)
        f = self.backbone.forward_features(img)
        f = self.backbone.forward_head(f, pre_logits=True)  # e.g. ConvNeXt's final norm; keeps (B, F, h, w)
        if f.dim() != 4:
            raise ValueError(f"model.backbone: {type(self.backbone).__name__} gives {f.dim()}D features; GeM needs a CNN (B, F, h, w) map")
        return self.pool(f)

    def forward_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch → pooled features (B, num_features)."""
        return self.features_from_image(self.image(batch))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch → logits (B, n_classes) (or features (B, num_features) when built with head=False)."""
        return self.head(self.drop(self.forward_features(self.input_stage(batch))))
