"""Config keys of the top-solution techniques: validated on load, errors name the key."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO_ROOT

from hbac.config import load_config
from hbac.errors import ConfigError

TINY_2D = REPO_ROOT / "configs" / "tiny" / "hms_2d.yaml"


@pytest.mark.parametrize(
    "override,key",
    [
        ({"augment": {"albumentations": [{"name": "NoSuchMask"}]}}, r"augment\.albumentations\[0\]\.name"),
        ({"augment": {"albumentations": [{"name": "XYMasking", "params": {"bogus": 1}}]}}, r"augment\.albumentations\[0\]\.params"),
        ({"augment": {"albumentations": [{"name": "CoarseDropout", "params": {"fill": "x"}}]}}, r"augment\.albumentations\[0\]\.params"),
        ({"augment": {"albumentations": [{"params": {}}]}}, r"augment\.albumentations\[0\]\.name"),
        ({"selection": {"per_eeg_window": "last"}}, r"selection\.per_eeg_window"),
        ({"model": {"window_s": 80.0}}, r"model\.window_s"),
        ({"model": {"kind": "wavenet1"}}, r"model\.kind"),
        ({"model": {"cwt": {"n_cycle": 3}}}, r"model\.cwt\.n_cycle"),
        ({"tta": {"offsets_s": []}}, r"tta\.offsets_s"),
        ({"train": {"seeds": [1, 1]}}, r"train\.seeds"),
        ({"train": {"pseudo": {"max_votes": 3}}}, r"train\.pseudo\.source"),
        ({"train": {"pseudo": {"source": "x.csv", "weight": 2.0}}}, r"train\.pseudo\.weight"),
    ],
)
def test_bad_technique_keys_are_named(override: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(TINY_2D, override)


def test_good_technique_keys_load(tmp_path: Path) -> None:
    cfg = load_config(TINY_2D, {
        "augment": {"albumentations": [{"name": "XYMasking", "params": {"num_masks_x": [1, 2], "mask_x_length": [5, 20], "fill": 0}}]},
        "selection": {"strategy": "per_eeg", "per_eeg_window": "random"},
        "model": {"window_s": 10.0, "inputs": ["kaggle_spec", "eeg_cwt", "eeg_raw2d"]},
        "tta": {"offsets_s": [-2.0, 0.0, 2.0]},
        "train": {"seeds": [42, 43], "pseudo": {"source": "outputs/ens/oof.csv", "max_votes": 9, "weight": 0.5}},
    })
    assert cfg.augment.albumentations[0].name == "XYMasking"
    assert cfg.train.seeds == [42, 43] and cfg.train.pseudo.weight == 0.5
    assert cfg.tta.offsets_s == [-2.0, 0.0, 2.0]
