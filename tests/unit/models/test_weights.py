"""`python -m hbac weights fetch`: timm's download (stubbed at huggingface_hub's download function) → a local
<backbone>.pth that `model.pretrained_path` loads; a missing file is an error naming it and the fetch command."""
from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from conftest import REPO_ROOT

from hbac.cli import main
from hbac.config import ModelConfig
from hbac.errors import WeightsError
from hbac.models import build_model
from hbac.models.weights import config_backbones, fetch_weights, weights_file

BACKBONE = "tf_mobilenetv3_small_minimal_100"  # the tiny configs' backbone
HMS_CH = ["Fp1-F7", "F7-T3", "T3-T5", "T5-O1", "Fp2-F8", "F8-T4", "T4-T6", "T6-O2",
          "Fp1-F3", "F3-C3", "C3-P3", "P3-O1", "Fp2-F4", "F4-C4", "C4-P4", "P4-O2"]


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """The network boundary only: huggingface_hub's hf_hub_download as timm calls it, serving seeded 'ImageNet' weights."""
    torch.manual_seed(123)
    served = {k: (torch.randn_like(v) if v.is_floating_point() else v) for k, v in timm.create_model(BACKBONE, pretrained=False).state_dict().items()}
    calls: list[tuple[str, str]] = []

    def hf_hub_download(repo_id: str, filename: str, revision=None, cache_dir=None, **kw) -> str:
        calls.append((repo_id, filename))
        p = tmp_path / "hub" / repo_id.replace("/", "--") / filename
        p.parent.mkdir(parents=True, exist_ok=True)
        if filename.endswith(".safetensors"):
            safetensors.torch.save_file({k: v.contiguous() for k, v in served.items()}, str(p))
        else:
            torch.save(served, p)
        return str(p)

    monkeypatch.setattr(timm.models._hub, "hf_hub_download", hf_hub_download)
    return {"state": served, "calls": calls}


def test_fetch_saves_the_downloaded_weights_and_the_config_loads_them(hub: dict, tmp_path: Path) -> None:
    (path,) = fetch_weights([BACKBONE], tmp_path / "weights")
    assert path == weights_file(BACKBONE, tmp_path / "weights") and path.name == f"{BACKBONE}.pth"
    assert hub["calls"] and hub["calls"][0][0].startswith("timm/")  # it went through timm → huggingface_hub
    saved = torch.load(path, weights_only=True)
    torch.testing.assert_close(saved["conv_stem.weight"], hub["state"]["conv_stem.weight"])
    cfg = ModelConfig(kind="2d", backbone=BACKBONE, pretrained=True, pretrained_path=str(path), inputs=["kaggle_spec"])
    model = build_model(cfg, 6, HMS_CH, 200.0, 10_000)
    torch.testing.assert_close(model.backbone.state_dict()["blocks.0.0.conv_dw.weight"], hub["state"]["blocks.0.0.conv_dw.weight"])
    n = len(hub["calls"])
    fetch_weights([BACKBONE], tmp_path / "weights")  # already there: no second download
    assert len(hub["calls"]) == n


def test_cli_fetches_the_backbones_of_configs(hub: dict, tmp_path: Path, capsys) -> None:
    tiny = REPO_ROOT / "configs" / "tiny"
    assert config_backbones([tiny / "hms_2d.yaml", tiny / "hms_1d.yaml", tiny / "hms_multimodal.yaml"]) == [BACKBONE]
    assert main(["weights", "fetch", str(tiny / "hms_2d.yaml"), "--out", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / f"{BACKBONE}.pth").is_file() and "weights:" in capsys.readouterr().out


def test_shipped_2d_configs_point_at_the_fetched_files() -> None:
    for p in sorted((REPO_ROOT / "configs").glob("*.yaml")):
        from hbac.config import ExperimentConfig, load_config

        cfg = load_config(p)
        if isinstance(cfg, ExperimentConfig) and cfg.model.kind in ("2d", "multimodal"):
            assert cfg.model.pretrained, f"{p.name}: 2D recipe without ImageNet weights"
            assert cfg.model.pretrained_path == f"inputs/weights/{cfg.model.backbone}.pth", p.name


def test_missing_weights_file_names_it_and_the_fetch_command(tmp_path: Path) -> None:
    missing = tmp_path / "weights" / f"{BACKBONE}.pth"
    cfg = ModelConfig(kind="2d", backbone=BACKBONE, pretrained=True, pretrained_path=str(missing), inputs=["kaggle_spec"])
    with pytest.raises(WeightsError, match=rf"{BACKBONE}\.pth.*python -m hbac weights fetch --backbone {BACKBONE}"):
        build_model(cfg, 6, HMS_CH, 200.0, 10_000)


def test_fetch_without_network_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(timm.models._hub, "hf_hub_download", offline)
    with pytest.raises(WeightsError, match=f"cannot fetch the pretrained weights of '{BACKBONE}'.*network"):
        fetch_weights([BACKBONE], tmp_path)
    assert not (tmp_path / f"{BACKBONE}.pth").exists()
