"""An experiment's folds predicted in one pass over the data: the mean of each fold's own prediction."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from hbac.config import load_config
from hbac.engine.loop import predict_loader
from hbac.inference.predict import fold_models
from hbac.models import build_model
from conftest import REPO_ROOT


class _Windows(Dataset):
    """Items `eeg` (3, 8) cut from a fixed signal; `set_view` shifts the cut; channels 0 and 2 mirror each other."""

    flip_perms = {"eeg": np.array([2, 1, 0])}

    def __init__(self) -> None:
        self.x = torch.randn(10, 3, 12, generator=torch.Generator().manual_seed(0))
        self.shift = 0

    def set_view(self, shift_s: float) -> None:
        self.shift = int(shift_s)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"eeg": self.x[i, :, 2 + self.shift : 10 + self.shift], "index": torch.tensor(i)}


class _Linear(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(24, 4)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fc(batch["eeg"].flatten(1))


def test_many_models_in_one_pass_average_their_own_predictions() -> None:
    ds = _Windows()
    loader = DataLoader(ds, batch_size=4)
    models = [_Linear(s) for s in range(3)]
    kw = dict(device=torch.device("cpu"), tta_flip=True, offsets_s=[0.0, 1.0, -2.0], progress=False)
    timings: dict[str, float] = {}
    together = predict_loader(models, loader, timings=timings, **kw)
    alone = [predict_loader(m, loader, **kw) for m in models]
    assert together.shape == (10, 4)
    np.testing.assert_allclose(together, np.mean(alone, axis=0), rtol=0, atol=1e-12)
    assert not np.allclose(alone[0], alone[1])  # the models differ, so the mean is a real test
    assert timings["forward"] > 0 and timings["data"] > 0


def test_fold_models_hold_each_checkpoints_weights() -> None:
    cfg = load_config(REPO_ROOT / "configs" / "tiny" / "hms_1d.yaml", {"data": {"data_dir": "unused"}})
    channels = [f"c{i}" for i in range(16)]
    ckpts = []
    for seed in range(2):
        torch.manual_seed(seed)
        m = build_model(dataclasses.replace(cfg.model, pretrained=False), 6, channels, 200.0, 400)
        ckpts.append({"model": m.state_dict(), "channels": channels, "fs": 200.0, "n_times": 400, "classes": list("abcdef")})
    models = fold_models(cfg, ckpts, None, torch.device("cpu"))
    assert len(models) == 2 and models[0] is not models[1]
    for m, ck in zip(models, ckpts):
        for k, v in m.state_dict().items():
            torch.testing.assert_close(v, ck["model"][k], rtol=0, atol=0)
    x = {"eeg": torch.randn(2, 16, 400)}
    with torch.no_grad():
        assert not torch.allclose(models[0].eval()(x), models[1].eval()(x))
