"""Dataset options: each adapter declares its own data-config keys (`DataConfig.options`), validated like the rest.

The keys stay where the files always had them (the data config's top level) and keep the cache hash: the
shipped configs hash as they did before the options moved out of the generic `DataConfig`.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from hbac.config import DataConfig, config_kind, from_dict, load_config, parse_sets, read_yaml, to_dict, with_overrides
from hbac.datasets.edf_montage import WindowedOptions, WindowParams, sliding_windows
from hbac.datasets.hms import HMSOptions
from hbac.errors import ConfigError

# DataConfig.hash() of every shipped data config, recorded by running main's code at e2cb045 (before this
# change, when kaggle_spec/eeg_window_s/windows/patients were generic DataConfig keys) with the working
# directory at / (data_dir is resolved into the hash). Ensembles and tune studies hold no data config.
OLD_HASHES = {
    "configs/chbmit_eeg1d.yaml": "e844e0e43457f136",
    "configs/chbmit_effnet_mel.yaml": "e844e0e43457f136",
    "configs/data/chbmit.yaml": "e844e0e43457f136",
    "configs/data/hms.yaml": "b6c35f90d06ff433",
    "configs/data/hms_test.yaml": "ae546f71f4ec6cbb",
    "configs/hms_cwt.yaml": "b6c35f90d06ff433",
    "configs/hms_eeg1d_gru.yaml": "b6c35f90d06ff433",
    "configs/hms_effnet1d.yaml": "b6c35f90d06ff433",
    "configs/hms_effnet_b0_kaggle_eeg.yaml": "b6c35f90d06ff433",
    "configs/hms_features_hgb.yaml": "b6c35f90d06ff433",
    "configs/hms_mixnet_mel.yaml": "b6c35f90d06ff433",
    "configs/hms_multimodal.yaml": "b6c35f90d06ff433",
    "configs/hms_raw2d.yaml": "b6c35f90d06ff433",
    "configs/hms_wavenet.yaml": "b6c35f90d06ff433",
    "configs/tiny/bids_1d.yaml": "06f8969d3cf4b03b",
    "configs/tiny/chbmit_1d.yaml": "2c1523f8ed4e2dc9",
    "configs/tiny/chbmit_2d.yaml": "2c1523f8ed4e2dc9",
    "configs/tiny/data_bids.yaml": "06f8969d3cf4b03b",
    "configs/tiny/data_chbmit.yaml": "2c1523f8ed4e2dc9",
    "configs/tiny/data_hms.yaml": "cb40b359f06d9343",
    "configs/tiny/data_tusz.yaml": "3bee7b706f4fa7f9",
    "configs/tiny/hms_1d.yaml": "cb40b359f06d9343",
    "configs/tiny/hms_2d.yaml": "cb40b359f06d9343",
    "configs/tiny/hms_cwt.yaml": "cb40b359f06d9343",
    "configs/tiny/hms_effnet1d.yaml": "cb40b359f06d9343",
    "configs/tiny/hms_features.yaml": "cb40b359f06d9343",
    "configs/tiny/hms_multimodal.yaml": "cb40b359f06d9343",
    "configs/tiny/hms_raw2d.yaml": "cb40b359f06d9343",
    "configs/tiny/hms_wavenet.yaml": "cb40b359f06d9343",
    "configs/tiny/tusz_1d.yaml": "3bee7b706f4fa7f9",
}


def test_shipped_configs_keep_their_cache_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    configs = sorted(p for p in (REPO_ROOT / "configs").rglob("*.yaml") if "tune" not in p.parts and config_kind(read_yaml(p)) != "ensemble")
    assert sorted(str(p.relative_to(REPO_ROOT)) for p in configs) == sorted(OLD_HASHES)  # a new config: record its hash
    for p in configs:
        cfg = load_config(p)
        data = cfg if isinstance(cfg, DataConfig) else cfg.data
        assert data.hash() == OLD_HASHES[str(p.relative_to(REPO_ROOT))], p


def test_hash_params_keep_the_old_flat_layout() -> None:
    """Every dataset's hash parameters hold the four once-generic keys at the top level (caches built before stay valid)."""
    for name in ("hms", "chbmit"):
        params = load_config(REPO_ROOT / "configs" / "data" / f"{name}.yaml").hash_params()
        assert {"kaggle_spec", "eeg_window_s", "windows", "patients"} <= set(params) and "options" not in params
    chb = load_config(REPO_ROOT / "configs" / "data" / "chbmit.yaml")
    assert chb.hash_params()["windows"] == {"window_s": 10.0, "stride_s": 5.0, "label": "hard", "hard_min_overlap": 0.5}
    assert with_overrides(chb, {"windows": {"stride_s": 2.5}}).hash() != chb.hash()  # an option changes the cache


def test_keys_are_routed_to_the_datasets_options() -> None:
    hms = from_dict(DataConfig, {"name": "h", "kaggle_spec": False, "eeg_window_s": 20})
    assert hms.options == HMSOptions(kaggle_spec=False, eeg_window_s=20.0)
    chb = from_dict(DataConfig, {"name": "c", "dataset": "chbmit", "patients": ["chb01"], "windows": {"window_s": 4}})
    assert chb.options == WindowedOptions(windows=WindowParams(window_s=4.0), patients=["chb01"])
    assert sliding_windows(chb).window_s == 4.0
    with pytest.raises(ValueError, match="dataset 'hms' has no sliding windows"):
        sliding_windows(hms)
    back = to_dict(chb)  # the options sit at the top level again, as in the file, and read back equal
    assert back["patients"] == ["chb01"] and "options" not in back and from_dict(DataConfig, back) == chb
    assert pickle.loads(pickle.dumps(chb)) == chb


@pytest.mark.parametrize("d, message", [
    ({"dataset": "chbmit", "eeg_window_s": 20.0}, "c.yaml: eeg_window_s: dataset 'chbmit' has no such option"),
    ({"dataset": "chbmit", "kaggle_spec": True}, "c.yaml: kaggle_spec: dataset 'chbmit' has no such option"),
    ({"dataset": "hms", "patients": ["chb01"]}, "c.yaml: patients: dataset 'hms' has no such option"),
    ({"dataset": "hms", "stride_s": 1}, "c.yaml: unknown key 'stride_s' for dataset 'hms' (allowed here: "),
    ({"dataset": "hms", "options": {"kaggle_spec": False}}, "c.yaml: unknown key 'options' for dataset 'hms'"),
    ({"dataset": "hms", "kaggle_spec": "no"}, "c.yaml: kaggle_spec: expected true/false, got str 'no'"),
    ({"dataset": "hms", "eeg_window_s": 0}, "c.yaml: eeg_window_s: must be > 0"),
    ({"dataset": "tusz", "windows": {"label": "fuzzy"}}, "c.yaml: windows.label: 'fuzzy' is not one of ['soft', 'hard']"),
    ({"dataset": "bids", "windows": {"step": 1}}, "c.yaml: unknown key 'windows.step' (allowed here: hard_min_overlap, label"),
])
def test_option_errors_name_the_key_and_the_dataset(d: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        from_dict(DataConfig, {"name": "c", **d}, "c.yaml")
    assert str(e.value).startswith(message), e.value


def test_old_generic_keys_at_their_old_values_still_load() -> None:
    """Configs saved before the move (run folders, checkpoints) carry every once-generic key: accepted at the value
    every config of that dataset had, which changes nothing."""
    old_hms = {"name": "h", "kaggle_spec": True, "eeg_window_s": 50.0, "patients": None,
               "windows": {"window_s": 10.0, "stride_s": 5.0, "label": "hard", "hard_min_overlap": 0.5}}
    assert from_dict(DataConfig, old_hms).options == HMSOptions()
    old_chb = {"name": "c", "dataset": "chbmit", "kaggle_spec": False, "eeg_window_s": 50.0, "patients": None}
    assert from_dict(DataConfig, old_chb).options == WindowedOptions()


def test_set_overrides_reach_the_options(tmp_path: Path) -> None:
    tiny = REPO_ROOT / "configs" / "tiny"
    exp = load_config(tiny / "hms_1d.yaml", parse_sets(["data.kaggle_spec=false", "data.eeg_window_s=30"]))
    assert exp.data.options == HMSOptions(kaggle_spec=False, eeg_window_s=30.0)
    chb = load_config(tiny / "chbmit_1d.yaml", parse_sets(["data.windows.stride_s=2.5"]))
    assert chb.data.options.windows.stride_s == 2.5
    with pytest.raises(ConfigError, match=r"chbmit_1d.yaml \(with command-line overrides\): data.eeg_window_s: dataset 'chbmit'"):
        load_config(tiny / "chbmit_1d.yaml", parse_sets(["data.eeg_window_s=30"]))
    with pytest.raises(ConfigError, match=r"model.window_s: 10.0 must be <= data.windows.window_s \(4.0\)"):
        load_config(tiny / "chbmit_1d.yaml", parse_sets(["data.windows.window_s=4", "model.window_s=10"]))


def test_options_of_another_dataset_are_refused() -> None:
    with pytest.raises(ConfigError, match="options: dataset 'chbmit' takes WindowedOptions, got HMSOptions"):
        DataConfig(name="c", dataset="chbmit", options=HMSOptions())
    assert DataConfig(name="c", dataset="chbmit").options == WindowedOptions()  # None: the adapter's defaults
