"""Every torch model kind of the registry goes through every explanation method (random inputs, shapes and ranges)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hbac.config import load_config
from hbac.models import MODELS, build_model
from hbac.signals.montage import montage_names

FS, T = 200.0, 4000  # the tiny HMS window (configs/tiny/data_hms.yaml: eeg_window_s 20) at 200 Hz; 50 s cost 2.5x the CPU


def tiny_configs(repo_root):
    """One shipped tiny HMS config per torch model kind (and per 2D input family)."""
    out = {}
    for p in sorted((repo_root / "configs" / "tiny").glob("hms_*.yaml")):
        cfg = load_config(p)
        if cfg.model.kind in MODELS:
            out[p.stem] = cfg
    return out


def test_every_registered_kind_has_a_tiny_config(repo_root):
    kinds = {c.model.kind for c in tiny_configs(repo_root).values()}
    assert set(MODELS) <= kinds, set(MODELS) - kinds


@pytest.mark.parametrize("name", ["hms_1d", "hms_2d", "hms_multimodal", "hms_wavenet", "hms_effnet1d", "hms_cwt", "hms_raw2d"])
def test_explanations_run_on_every_model_kind(repo_root, name):
    # here, not at the top: captum, matplotlib and scipy.signal (2 s) for the one test in this file that explains
    from hbac.explain.actmax import maximise
    from hbac.explain.deconv import reverse_maps
    from hbac.explain.gradcam import target_layers, time_cam

    cfgs = tiny_configs(repo_root)
    if name not in cfgs:
        pytest.skip(f"configs/tiny/{name}.yaml not present")
    torch.manual_seed(0)
    m = build_model(cfgs[name].model, 6, montage_names("double_banana"), FS, T).eval()
    b = {"eeg": torch.randn(2, 16, T) * 30}
    if "kaggle_spec" in m.input_keys:
        b["kaggle_spec"] = torch.randn(2, 4, 100, 300) * 0.1
    layers = target_layers(m)
    assert layers
    cam, two = time_cam(m, b, 1, T / FS)
    if cam is not None:
        assert cam.shape == (2, T) and np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    if two is not None:
        img, m2, tiles = two
        assert m2.shape == img.shape and tiles
        h, w = img.shape[-2:]
        covered = np.zeros((h, w), bool)
        for t in tiles:
            assert 0 <= t.r0 < t.r1 <= h and 0 <= t.c0 < t.c1 <= w
            covered[t.r0 : t.r1, t.c0 : t.c1] = True
        assert covered.mean() > 0.95  # the tiles tile the image
    fmaps = reverse_maps(m, b)
    assert fmaps and all(f.maps.shape[0] == 2 and np.isfinite(f.maps).all() for f in fmaps)
    r = maximise(m, {k: tuple(v.shape[1:]) for k, v in b.items()}, 1, FS, steps=3)
    assert set(r.inputs) == set(m.input_keys) and abs(r.p_end.sum() - 1) < 1e-5
