"""ImageNet weights of the 2D backbones as local files: fetched once (where a network is) through timm,
read at training time from `model.pretrained_path` (never downloaded at run time).

    python -m hbac weights fetch [CONFIG …] --out inputs/weights   → inputs/weights/<backbone>.pth
"""
from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Iterable, Sequence

import timm
import torch

from hbac.config import ExperimentConfig, load_config
from hbac.errors import WeightsError
from hbac.io import atomic_path

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("inputs/weights")
FETCH_HINT = "python -m hbac weights fetch CONFIG --out {dir}"


def weights_file(backbone: str, out: Path = DEFAULT_DIR) -> Path:
    """Where `weights fetch` saves a backbone's state dict: `<out>/<backbone>.pth`."""
    return Path(out) / f"{backbone}.pth"


def config_backbones(paths: Iterable[str | Path]) -> list[str]:
    """timm names of the backbones of the 2D / multimodal experiment configs among `paths`, in order, once each."""
    names: list[str] = []
    for p in paths:
        cfg = load_config(p)
        if isinstance(cfg, ExperimentConfig) and cfg.model.kind in ("2d", "multimodal") and cfg.model.backbone not in names:
            names.append(cfg.model.backbone)
    return names


def fetch_weights(backbones: Sequence[str], out: Path = DEFAULT_DIR, force: bool = False) -> list[Path]:
    """Save each backbone's pretrained timm weights (downloaded by timm / huggingface_hub) to `<out>/<backbone>.pth`.

    Needs a network (or a filled huggingface cache); files already there are kept unless `force`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for name in backbones:
        path = weights_file(name, out)
        if path.exists() and not force:
            log.info("%s: already there", path)
            saved.append(path)
            continue
        try:
            model = timm.create_model(name, pretrained=True)  # the download: timm → huggingface_hub
        except (OSError, RuntimeError, ValueError) as e:  # no network, unknown name, no pretrained tag
            raise WeightsError(f"cannot fetch the pretrained weights of '{name}' through timm ({type(e).__name__}: {e}); "
                               "this needs a network connection (on Kaggle: enable Internet, or upload the file as a dataset)") from e
        with atomic_path(path) as tmp:
            torch.save(model.state_dict(), tmp)
        log.info("saved %s (%d tensors)", path, len(model.state_dict()))
        saved.append(path)
    return saved


def default_configs() -> list[str]:
    """The shipped experiment configs (configs/*.yaml of the current folder)."""
    return sorted(glob.glob("configs/*.yaml"))
