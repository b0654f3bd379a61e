"""The config validator: unknown keys, types, ranges, cross-field checks, `--set` overrides, YAML errors, one-line CLI errors."""
from __future__ import annotations

import errno
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT

from hbac.cache.build import prepare
from hbac.cli import main
from hbac.config import (
    DataConfig,
    EnsembleConfig,
    ExperimentConfig,
    from_dict,
    load_config,
    parse_sets,
    to_dict,
    with_overrides,
)
from hbac.datasets import adapter_for
from hbac.datasets.hms import HMS_TRAIN_DTYPES, read_test_csv, read_train_csv
from hbac.engine.checkpoint import load_checkpoint, save_checkpoint
from hbac.errors import CheckpointError, ConfigError, DataError, DiskFullError
from hbac.inference.predict import resolve_members
from hbac.io import atomic_write_json, atomic_write_text, read_json

TINY = REPO_ROOT / "configs" / "tiny"


def write(tmp_path: Path, d: dict, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d))
    return p


def exp(**sections) -> dict:
    """A minimal experiment dict with the given sections merged in."""
    d = {"name": "e", "data": {"name": "d"}}
    d.update(sections)
    return d


# --------------------------------------------------------------------------- every shipped config is valid
SHIPPED = sorted(p for p in (REPO_ROOT / "configs").rglob("*.yaml") if "tune" not in p.relative_to(REPO_ROOT).parts)  # tune files: hbac.engine.tune


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name
    assert from_dict(type(cfg), to_dict(cfg)) == cfg  # round trip


# --------------------------------------------------------------------------- types and keys
@pytest.mark.parametrize(
    "d, message",
    [
        (exp(train={"epoch": 3}), "unknown key 'train.epoch'"),
        (exp(data={"name": "d", "eeg": {"bandpas": [1, 2]}}), "unknown key 'data.eeg.bandpas'"),
        (exp(train={"epochs": "3"}), "train.epochs: expected an integer, got str '3'"),
        (exp(train={"epochs": 3.5}), "train.epochs: expected an integer"),
        (exp(train={"epochs": True}), "train.epochs: expected an integer, got bool"),
        (exp(train={"lr": "fast"}), "train.lr: expected a number"),
        (exp(train={"amp": "yes"}), "train.amp: 'yes' is not one of"),
        (exp(model={"inputs": ["kaggle_spec", "raw"]}), "model.inputs[1]: 'raw' is not one of"),
        (exp(model={"inputs": "eeg_spec"}), "model.inputs: expected a list"),
        (exp(model={"oned": {"channels": [8, "x"]}}), "model.oned.channels[1]: expected an integer"),
        (exp(data={"name": "d", "eeg": {"bandpass": "0.5-40"}}), "data.eeg.bandpass: expected a list"),
        (exp(model={"spec": 3}), "model.spec: expected a mapping"),
        ({"data": {"name": "d"}}, "missing required key 'name'"),
        ({"name": "e"} | {"model": {}}, "missing required key 'data'"),
        (exp(data={"name": "d", "eeg": {"notch_hz": "60"}}), "data.eeg.notch_hz: expected a number"),
    ],
)
def test_type_and_key_errors_name_the_key(tmp_path: Path, d: dict, message: str) -> None:
    p = write(tmp_path, d)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_optional_accepts_null_and_a_value(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, exp(train={"ema": None, "grad_clip": 2}, data={"name": "d", "eeg": {"bandpass": None, "fs": 100}})))
    assert cfg.train.ema is None and cfg.train.grad_clip == 2.0 and isinstance(cfg.train.grad_clip, float)
    assert cfg.data.eeg.bandpass is None and cfg.data.eeg.fs == 100.0


def test_yaml_12_floats(tmp_path: Path) -> None:
    """`lr: 1e-3` is a float (PyYAML alone reads it as a string)."""
    cfg = load_config(_raw(tmp_path, "name: e\ndata: {name: d}\ntrain: {lr: 1e-3, weight_decay: 5E-2}\n"))
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.train.weight_decay == pytest.approx(5e-2)


def _raw(tmp_path: Path, text: str, name: str = "raw.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- ranges (issue 10 item 7)
@pytest.mark.parametrize(
    "d, message",
    [
        (exp(train={"epochs": -3}), "train.epochs: must be >= 1, got -3"),
        (exp(train={"epochs": 0}), "train.epochs: must be >= 1, got 0"),
        (exp(train={"batch_size": 0}), "train.batch_size: must be >= 1, got 0"),
        (exp(train={"lr": 0}), "train.lr: must be > 0"),
        (exp(train={"lr": -1e-3}), "train.lr: must be > 0"),
        (exp(train={"warmup_frac": 1.0}), "train.warmup_frac: must be < 1"),
        (exp(train={"ema": 1.0}), "train.ema: must be < 1"),
        (exp(train={"class_weights": [1.0, -2.0]}), "train.class_weights[1]: must be >= 0, got -2.0"),
        (exp(train={"class_weights": [0.0, 0.0]}), "train.class_weights: [0.0, 0.0] must hold at least one positive weight"),
        (exp(train={"stage2": {"enabled": True, "epochs": 0}}), "train.stage2.epochs: must be >= 1"),
        (exp(train={"max_steps_per_epoch": 0}), "train.max_steps_per_epoch: must be >= 1"),
        (exp(folds={"n_folds": 0}), "folds.n_folds: must be >= 2, got 0"),
        (exp(folds={"n_folds": 1}), "folds.n_folds: must be >= 2, got 1"),
        (exp(selection={"strategy": "min_votes", "min_votes": 0}), "selection.min_votes: must be >= 1, got 0"),
        (exp(augment={"mixup": 1.5}), "augment.mixup: must be <= 1"),
        (exp(augment={"mixup_alpha": 0}), "augment.mixup_alpha: must be > 0"),
        (exp(model={"drop_rate": 1.0}), "model.drop_rate: must be < 1"),
        (exp(model={"oned": {"kernel_size": 4}}), "model.oned.kernel_size: must be odd, got 4"),
        (exp(model={"oned": {"channels": []}}), "model.oned.channels: needs at least one stage"),
        (exp(model={"spec": {"n_fft": 64, "win_length": 128}}), "model.spec.win_length: 128 is longer than model.spec.n_fft 64"),
        (exp(model={"spec": {"fmin": 20, "fmax": 10}}), "model.spec.fmin (20 Hz) must be below model.spec.fmax (10 Hz)"),
        (exp(data={"name": "d", "eeg_window_s": 0}), "data.eeg_window_s: must be > 0"),
        (exp(data={"name": "d", "workers": -1}), "data.workers: must be >= 0"),
        (exp(data={"name": "d", "dataset": "chbmit", "windows": {"stride_s": 0}}, model={"kind": "1d"}), "data.windows.stride_s: must be > 0"),
        (exp(data={"name": "d", "eeg": {"bandpass": [20, 0.5]}}), "data.eeg.bandpass: low edge 20 Hz must be below the high edge 0.5 Hz"),
        (exp(data={"name": "d", "eeg": {"bandpass": [5, 5]}}), "data.eeg.bandpass: low edge 5 Hz must be below"),
        (exp(data={"name": "d", "eeg": {"bandpass": [-1, 20]}}), "data.eeg.bandpass[0]: must be >= 0"),
        (exp(data={"name": "d", "eeg": {"bandpass": [1, 20, 30]}}), "data.eeg.bandpass: expected [low, high]"),
        (exp(data={"name": "d", "eeg": {"bandpass": [0.5, 60], "fs": 100}}),
         "data.eeg.bandpass: edge 60 Hz is at or above the Nyquist frequency 50 Hz (data.eeg.fs = 100 Hz)"),
        (exp(data={"name": "d", "eeg": {"fs": 0}}), "data.eeg.fs: must be > 0"),
        (exp(name="a/b"), "name: 'a/b' is not a valid folder name"),
        (exp(data={"name": ""}), "data.name: '' is not a valid folder name"),
    ],
)
def test_out_of_range_values_are_load_time_errors(tmp_path: Path, d: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, d))
    assert message in str(e.value), str(e.value)


def test_band_above_the_native_nyquist_rate(tmp_path: Path) -> None:
    """HMS is sampled at 200 Hz and filtered before resampling: a 150 Hz edge is a load-time error naming the key."""
    with pytest.raises(ConfigError, match=r"data\.eeg\.bandpass: edge 150 Hz is at or above the Nyquist frequency 100 Hz \(dataset 'hms' is sampled at 200 Hz\)"):
        load_config(write(tmp_path, exp(data={"name": "d", "eeg": {"bandpass": [0.5, 150]}})))


def test_band_checked_against_the_files_rate(synth_hms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At prepare time the rate read from the files is the reference; the error is a config error, not a parquet file's."""
    cfg = load_config(TINY / "data_hms.yaml", {"data_dir": str(synth_hms), "cache_root": str(tmp_path), "workers": 1})
    # an adapter that does not declare its rate: only the files (200 Hz) can tell that 120 Hz is too high
    monkeypatch.setattr(type(adapter_for(cfg)), "fs", None)
    bad = with_overrides(cfg, {"eeg": {"bandpass": [0.5, 120.0]}})
    with pytest.raises(ConfigError, match=r"eeg\.bandpass: edge 120 Hz is at or above the Nyquist frequency 100 Hz \(recordings in .* are sampled at 200 Hz\)"):
        prepare(bad, progress=False)
    assert not (tmp_path / cfg.name).exists()


def test_data_config_checks_apply_alone(tmp_path: Path) -> None:
    """The same checks hold for a data config (keys without the `data.` prefix)."""
    with pytest.raises(ConfigError, match=r"c\.yaml: eeg\.bandpass: low edge 40 Hz"):
        load_config(write(tmp_path, {"name": "d", "eeg": {"bandpass": [40, 1]}}))


# --------------------------------------------------------------------------- cross-field checks
def test_kaggle_spec_input_needs_the_cache_to_hold_it(tmp_path: Path) -> None:
    d = exp(data={"name": "d", "kaggle_spec": False}, model={"kind": "2d", "inputs": ["kaggle_spec", "eeg_spec"]})
    with pytest.raises(ConfigError, match=r"model\.inputs: 'kaggle_spec' needs data\.kaggle_spec: true"):
        load_config(write(tmp_path, d))
    # a 1D model ignores model.inputs; a 2D model on the EEG spectrogram alone is fine
    load_config(write(tmp_path, exp(data={"name": "d", "kaggle_spec": False}, model={"kind": "1d"})))
    load_config(write(tmp_path, exp(data={"name": "d", "kaggle_spec": False}, model={"kind": "2d", "inputs": ["eeg_spec"]})))


@pytest.mark.parametrize("inputs, message", [([], "model.inputs: empty"), (["eeg_spec", "eeg_spec"], "lists an input twice")])
def test_model_inputs_non_empty_and_unique(tmp_path: Path, inputs: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, exp(model={"kind": "multimodal", "inputs": inputs})))


def test_spec_fmax_against_cached_rate(tmp_path: Path) -> None:
    d = exp(data={"name": "d", "eeg": {"fs": 32, "bandpass": [0.5, 10]}}, model={"kind": "2d", "inputs": ["eeg_spec"], "spec": {"fmax": 20}})
    with pytest.raises(ConfigError, match=r"model\.spec\.fmax: 20 Hz is above the Nyquist frequency of data\.eeg\.fs \(32 Hz\)"):
        load_config(write(tmp_path, d))


def test_class_weights_match_the_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.class_weights: 2 values for the 6 classes of data\.dataset 'hms' \(seizure, lpd"):
        load_config(write(tmp_path, exp(train={"loss": "focal", "class_weights": [1.0, 3.0]})))
    d = exp(data={"name": "d", "dataset": "chbmit", "kaggle_spec": False}, model={"kind": "1d"}, train={"loss": "focal", "class_weights": [1.0, 3.0]})
    assert load_config(write(tmp_path, d)).train.class_weights == [1.0, 3.0]


def test_stage2_must_select_fewer_rows_than_stage1(tmp_path: Path) -> None:
    d = exp(selection={"strategy": "min_votes", "min_votes": 10}, train={"stage2": {"enabled": True, "min_votes": 10}})
    with pytest.raises(ConfigError, match=r"train\.stage2\.min_votes \(10\) <= selection\.min_votes \(10\)"):
        load_config(write(tmp_path, d))
    d["train"]["stage2"]["min_votes"] = 12
    assert load_config(write(tmp_path, d)).train.stage2.min_votes == 12
    d["train"]["stage2"] = {"enabled": False, "min_votes": 5}  # disabled: not checked
    load_config(write(tmp_path, d))


@pytest.mark.parametrize(
    "members, message",
    [([], "members: empty"), (["a", "b", "a"], "members: 'a' is listed twice"), (["ens", "a"], "own name 'ens'")],
)
def test_ensemble_members(tmp_path: Path, members: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, {"name": "ens", "members": members}))


# --------------------------------------------------------------------------- --set parsing and precedence
def test_parse_sets_values_are_yaml() -> None:
    d = parse_sets(["train.epochs=3", "data.eeg.bandpass=[0.5,40]", "model.pretrained_path=null", "train.lr=1e-4",
                    "name=x=y", "train.amp=off", "train.ema="])
    assert d == {
        "train": {"epochs": 3, "lr": 1e-4, "amp": "off", "ema": None},
        "data": {"eeg": {"bandpass": [0.5, 40]}},
        "model": {"pretrained_path": None},
        "name": "x=y",
    }


def test_parse_sets_later_wins() -> None:
    assert parse_sets(["train.epochs=3", "train.epochs=5", "train.lr=0.1"]) == {"train": {"epochs": 5, "lr": 0.1}}


@pytest.mark.parametrize("item", ["train.epochs", "=3", "train..epochs=3", ".x=1"])
def test_parse_sets_malformed(item: str) -> None:
    with pytest.raises(ConfigError, match="expected key.path=value"):
        parse_sets([item])


def test_parse_sets_bad_yaml_value() -> None:
    with pytest.raises(ConfigError, match=r"--set data\.eeg\.bandpass: invalid YAML"):
        parse_sets(["data.eeg.bandpass=[0.5,40"])


def test_overrides_validated_like_the_file() -> None:
    with pytest.raises(ConfigError, match=r"hms_1d\.yaml \(with command-line overrides\): unknown key 'train\.epoch'"):
        load_config(TINY / "hms_1d.yaml", parse_sets(["train.epoch=3"]))
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer, got str 'three'"):
        load_config(TINY / "hms_1d.yaml", parse_sets(["train.epochs=three"]))
    cfg = load_config(TINY / "hms_1d.yaml", parse_sets(["train.epochs=3", "data.eeg.bandpass=[0.5,40]"]))
    assert cfg.train.epochs == 3 and cfg.data.eeg.bandpass == [0.5, 40.0]
    base = load_config(TINY / "hms_1d.yaml")
    assert cfg.train.lr == base.train.lr and cfg.data.eeg.montage == base.data.eeg.montage  # the rest of the file is kept


def test_data_overrides_land_in_the_data_section(tmp_path: Path) -> None:
    """--data-dir & co. go to `data:` of an experiment and to the top level of a data config; `data: file.yaml` still resolves."""
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"name": "d", "data_dir": "x"}))
    e = write(tmp_path, {"name": "e", "data": "d.yaml"}, "e.yaml")
    cfg = load_config(e, data_overrides={"data_dir": "/raw"})
    assert cfg.data.data_dir == "/raw" and cfg.data.name == "d"
    assert load_config(tmp_path / "d.yaml", data_overrides={"data_dir": "/raw"}).data_dir == "/raw"
    # precedence: file < flag overrides < --set
    cfg = load_config(e, parse_sets(["data.data_dir=/set"]), data_overrides={"data_dir": "/flag"})
    assert cfg.data.data_dir == "/set"


def test_wrong_kind_of_config() -> None:
    with pytest.raises(ConfigError, match=r"data_hms\.yaml: this looks like a data config; expected an experiment config"):
        load_config(TINY / "data_hms.yaml", expect=("experiment",))


def test_with_overrides_revalidates_and_leaves_the_original() -> None:
    cfg = load_config(TINY / "hms_1d.yaml")
    new = with_overrides(cfg, {"train": {"epochs": 7}})
    assert new.train.epochs == 7 and cfg.train.epochs != 7
    with pytest.raises(ConfigError, match=r"train\.epochs: must be >= 1"):
        with_overrides(cfg, {"train": {"epochs": 0}})


def test_cli_set_reaches_the_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`prepare --set` overrides a value: an unknown rate makes prepare fail on the overridden data_dir, named in the error."""
    rc = main(["prepare", str(TINY / "data_hms.yaml"), "--set", f"data_dir={tmp_path / 'nowhere'}", "--set", f"cache_root={tmp_path}"])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / "nowhere") in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", str(TINY / "hms_1d.yaml"), "--set", "train.epochs=-3"], "train.epochs: must be >= 1, got -3"),
        (["train", str(TINY / "hms_1d.yaml"), "--set", "train.batch_size=0"], "train.batch_size: must be >= 1, got 0"),
        (["train", str(TINY / "hms_1d.yaml"), "--set", "folds.n_folds=0"], "folds.n_folds: must be >= 2, got 0"),
        (["train", str(TINY / "hms_1d.yaml"), "--set", "train.epoch=3"], "unknown key 'train.epoch'"),
        (["prepare", str(TINY / "data_hms.yaml"), "--set", "eeg.bandpass=[20,0.5]"], "eeg.bandpass: low edge 20 Hz must be below the high edge 0.5 Hz"),
        (["ensemble", str(TINY / "ensemble.yaml"), "--set", "members=[]"], "members: empty"),
        (["train", str(TINY / "data_hms.yaml")], "this looks like a data config; expected an experiment config"),
        (["train", str(TINY / "hms_1d.yaml"), "--set", "oops"], "--set 'oops': expected key.path=value"),
    ],
)
def test_cli_reports_one_line(argv: list, message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_invalid_yaml_is_one_line_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = _raw(tmp_path, "name: e\ndata:\n  name: d\ntrain: [epochs: 3\nmodel: {}\n")
    with pytest.raises(ConfigError, match=rf"{p}: invalid YAML at line \d+, column \d+"):
        load_config(p)
    assert main(["train", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {p}: invalid YAML at line") and err.count("\n") == 1


def test_empty_config_file_says_so(tmp_path: Path) -> None:
    """An empty (or comments-only) YAML file is 'empty config file', not 'looks like a data config'."""
    for text in ("", "# nothing yet\n"):
        with pytest.raises(ConfigError, match=r"empty\.yaml: empty config file"):
            load_config(_raw(tmp_path, text, "empty.yaml"))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"top level must be a mapping, got list"):
        load_config(_raw(tmp_path, "- a\n- b\n"))


# --------------------------------------------------------------------------- files: CSV, checkpoint, disk (issue 10 item 7)
@pytest.mark.parametrize("reader", [read_train_csv, read_test_csv])
def test_empty_csv_names_the_file(tmp_path: Path, reader) -> None:
    p = tmp_path / "train.csv"
    p.write_bytes(b"")
    with pytest.raises(DataError, match=rf"{p}: empty file"):
        reader(p)


@pytest.mark.parametrize("reader", [read_train_csv, read_test_csv])
def test_header_only_csv_says_it_has_no_rows(tmp_path: Path, reader) -> None:
    """A header without rows is reported as such, not as a column of the wrong type."""
    p = tmp_path / "train.csv"
    p.write_text(",".join(HMS_TRAIN_DTYPES) + "\n")
    with pytest.raises(DataError, match=rf"^{p}: no data rows"):
        reader(p)


CKPT_MSG = r"(unreadable|not a trusted) checkpoint"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_corrupt_checkpoint_names_the_file(tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "best.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=CKPT_MSG) as e:
        load_checkpoint(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


@pytest.mark.parametrize("seed", [17, 62])
def test_random_bytes_checkpoint_names_the_file(tmp_path: Path, seed: int) -> None:
    """Random bytes that weights_only's unpickler meets with IndexError (seed 17) or KeyError (62): a CheckpointError too."""
    p = tmp_path / "best.pt"
    p.write_bytes(np.random.default_rng(seed).bytes(3000))
    with pytest.raises(CheckpointError, match=CKPT_MSG) as e:
        load_checkpoint(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_read_json_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "weights.json"
    for bad in (b"{oops", b"\xff\xfe"):
        p.write_bytes(bad)
        with pytest.raises(DataError, match=rf"^{p}: not valid JSON"):
            read_json(p)


@pytest.mark.parametrize("content", ["{oops", '{"w": 1}', '{"weights": {"a": "x"}}'])
def test_garbage_ensemble_weights_name_the_file(tmp_path: Path, content: str) -> None:
    """submit's ensemble weights.json: invalid JSON or the wrong shape is a DataError naming it, not a KeyError."""
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "weights.json").write_text(content)
    with pytest.raises(DataError, match=str(tmp_path / "ens" / "weights.json")):
        resolve_members(tmp_path, ensemble="ens")


def test_truncated_real_checkpoint_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "best.pt"
    torch.save({"model": {"w": torch.zeros(1000)}, "epoch": 1}, p)
    data = p.read_bytes()
    assert load_checkpoint(p)["epoch"] == 1
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=CKPT_MSG) as e:
        load_checkpoint(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ENOSPC during an atomic write says 'disk full while writing <path>' and leaves no temp file."""
    monkeypatch.setattr(Path, "write_text", _enospc)
    target = tmp_path / "out" / "scores.json"
    with pytest.raises(DiskFullError, match=rf"disk full while writing {target}"):
        atomic_write_json(target, {"a": 1})
    with pytest.raises(DiskFullError, match=rf"disk full while writing {target}"):
        atomic_write_text(target, "x")
    assert list((tmp_path / "out").iterdir()) == []


def test_full_disk_one_line_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The CLI turns a DiskFullError into one line (ensemble writes its outputs atomically)."""
    import hbac.cli as cli

    def fail(a):
        atomic_write_text(tmp_path / "x.txt", "x")

    monkeypatch.setattr(Path, "write_text", _enospc)
    monkeypatch.setattr(cli, "cmd_leaderboard", fail)  # build_parser looks the handler up when main() runs
    assert main(["leaderboard"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: disk full while writing {tmp_path / 'x.txt'} (OSError: [Errno 28] No space left on device)\n"


def test_ctrl_c_is_one_line_saying_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A bare KeyboardInterrupt (Ctrl-C) prints 'interrupted: Ctrl-C …' and exits 130 (it printed an empty reason)."""
    import hbac.cli as cli

    def interrupted(a):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_leaderboard", interrupted)
    assert main(["leaderboard"]) == 130
    assert capsys.readouterr().err.startswith("interrupted: Ctrl-C (temp files removed")


def test_file_too_large_is_reported_with_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EFBIG (a file over the file system's or `ulimit -f` size limit) is a one-line error naming the file, like ENOSPC."""
    def efbig(*args, **kwargs):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(Path, "write_text", efbig)
    target = tmp_path / "out" / "scores.json"
    with pytest.raises(DiskFullError, match=rf"^file too large while writing {target} \(OSError: \[Errno 27\]"):
        atomic_write_text(target, "x")
    assert list((tmp_path / "out").iterdir()) == []


def test_checkpoint_over_the_file_size_limit_names_the_file(tmp_path: Path) -> None:
    """torch.save past RLIMIT_FSIZE fails with a RuntimeError ('unexpected pos …'): reported as too large, naming best.pt."""
    target = tmp_path / "fold0" / "best.pt"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))  # this process only, for the one save below
    try:
        with pytest.raises(DiskFullError) as e:
            save_checkpoint(target, {"w": torch.zeros(100_000)})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(e.value).startswith(f"file too large while writing {target} (RuntimeError"), e.value
    assert list(target.parent.iterdir()) == []


def test_config_objects_are_not_edited_by_loading() -> None:
    """Loading twice gives equal, independent objects (no shared mutable defaults)."""
    a, b = load_config(TINY / "hms_2d.yaml"), load_config(TINY / "hms_2d.yaml")
    assert a == b and a.model.inputs is not b.model.inputs and a.data.options is not b.data.options
    # to_dict writes the dataset's options back at the data config's top level, as in the file; it reads back equal
    assert to_dict(a)["data"]["kaggle_spec"] is True and "options" not in to_dict(a)["data"]
    assert from_dict(ExperimentConfig, to_dict(a)) == a


def test_ensemble_and_data_classes() -> None:
    assert isinstance(load_config(TINY / "ensemble.yaml"), EnsembleConfig)
    assert isinstance(load_config(TINY / "data_hms.yaml"), DataConfig)
    assert isinstance(load_config(TINY / "hms_1d.yaml"), ExperimentConfig)


def test_model_inputs_are_checked_against_the_dataset_adapter(tmp_path: Path) -> None:
    """A 2D input is computed from the EEG, or an extra input the dataset's adapter declares and caches."""
    def write(data: str, inputs: list[str], **data_over) -> Path:
        p = tmp_path / f"{len(list(tmp_path.iterdir()))}.yaml"
        d = yaml.safe_load((REPO_ROOT / "configs" / "tiny" / data).read_text()) | data_over
        p.write_text(yaml.safe_dump({"name": "e", "data": d, "model": {"kind": "2d", "inputs": inputs}}))
        return p

    load_config(write("data_hms.yaml", ["kaggle_spec", "eeg_cwt"]))
    load_config(write("data_chbmit.yaml", ["eeg_spec"]))
    with pytest.raises(ConfigError, match=r"model.inputs: 'kaggle_spec' is not an input of dataset 'chbmit' \(its extra inputs: none"):
        load_config(write("data_chbmit.yaml", ["kaggle_spec", "eeg_spec"]))
    with pytest.raises(ConfigError, match=r"model.inputs: 'kaggle_spec' needs data.kaggle_spec: true"):
        load_config(write("data_hms.yaml", ["kaggle_spec"], kaggle_spec=False))
