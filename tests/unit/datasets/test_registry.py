"""The dataset registry: lookup, unknown names, plugins from a path, a module name or $HBAC_PLUGINS."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

from hbac import datasets
from hbac.config import DataConfig, ExperimentConfig, load_config
from hbac.datasets import DatasetAdapter, get_adapter, register, registered
from hbac.errors import ConfigError

PLUGIN = '''
from pathlib import Path
import numpy as np
import pandas as pd
from hbac.datasets import DatasetAdapter, register

class ToyAdapter(DatasetAdapter):
    name = "{name}"
    task = "seizure"
    classes = ["background", "seizure"]

    def table(self, cfg):
        return pd.DataFrame()

    def channels(self, cfg):
        return ["x"]

    def path(self, cfg, rid):
        return Path(cfg.data_dir) / f"{{rid}}.npy"

    def read(self, cfg, rid):
        return np.zeros((1, 10), np.float32), 10.0

register(ToyAdapter())
'''


def _plugin(tmp_path: Path, name: str) -> Path:
    p = tmp_path / f"{name}_adapter.py"
    p.write_text(PLUGIN.format(name=name))
    return p


def test_builtins_are_registered_with_their_task() -> None:
    names = registered()
    assert {"hms", "chbmit"} <= set(names)
    assert get_adapter("hms").task == "hms" and get_adapter("chbmit").task == "seizure"
    assert list(get_adapter("chbmit").classes) == ["background", "seizure"]
    assert [e.name for e in get_adapter("hms").extra_inputs] == ["kaggle_spec"]
    assert get_adapter("chbmit").extra_inputs == ()


def test_a_lookup_imports_only_its_own_adapter() -> None:
    """Loading an HMS config imports the HMS adapter alone (not the EDF datasets, pyedflib, timescoring, scipy: ~0.5 s of
    every CLI start-up); a lookup by another name imports that one; listing the datasets imports them all."""
    code = ("import sys; from hbac.config import load_config; from hbac import datasets\n"
            "def loaded(): return sorted(m.split('.')[-1] for m in sys.modules if m.startswith('hbac.datasets.') and m.count('.') == 2)\n"
            "load_config('configs/hms_eeg1d_gru.yaml'); print(loaded(), 'pyedflib' in sys.modules)\n"
            "datasets.get_adapter('chbmit'); print(loaded())\n"
            "print(datasets.registered())")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})
    assert r.returncode == 0, r.stderr[-2000:]
    first, second, names = r.stdout.strip().splitlines()
    assert first == "['base', 'hms', 'kaggle_spec'] False", first
    assert "'chbmit'" in second and "'bids'" not in second and "'tusz'" not in second, second
    assert {"hms", "chbmit", "bids", "tusz"} <= set(ast.literal_eval(names)), names


def test_unknown_dataset_is_a_config_error_listing_the_registered(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'nope' \(registered: .*chbmit.*hms") as e:
        get_adapter("nope")
    assert "data.plugins" in str(e.value)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({"name": "e", "data": {"name": "c", "dataset": "nope"}}))
    with pytest.raises(ConfigError, match=r"exp.yaml: data.dataset: unknown dataset 'nope' \(registered: .*chbmit, .*hms"):
        load_config(cfg)
    with pytest.raises(ConfigError, match=r"^dataset: unknown dataset 'eeg2'"):
        DataConfig(name="c", dataset="eeg2")


def test_plugin_from_a_path_registers_at_config_load(tmp_path: Path) -> None:
    path = _plugin(tmp_path, "toy_path")
    assert "toy_path" not in registered()
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({"name": "e", "data": {"name": "c", "dataset": "toy_path", "plugins": [str(path)]},
                                   "model": {"kind": "1d"}}))  # the default 2D inputs include an HMS-only one
    loaded = load_config(cfg)
    assert isinstance(loaded, ExperimentConfig) and loaded.data.dataset == "toy_path"
    a = get_adapter("toy_path")
    assert a.task == "seizure" and a.read(loaded.data, "r")[0].shape[1] == 10 and a.missing_reason(loaded.data, "r") is None
    assert DataConfig(name="c", dataset="toy_path").hash() == DataConfig(name="c", dataset="toy_path", plugins=[str(path)]).hash()


def test_plugin_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({"name": "e", "data": {"name": "c", "dataset": "x", "plugins": [str(tmp_path / "absent.py")]}}))
    with pytest.raises(ConfigError, match=r"data.plugins: adapter module .*absent.py.* not found"):
        load_config(cfg)
    with pytest.raises(ConfigError, match=r"plugins: cannot import adapter module 'no_such_module_xyz'"):
        DataConfig(name="c", plugins=["no_such_module_xyz"])
    broken = tmp_path / "broken_adapter.py"
    broken.write_text("raise RuntimeError('oops')\n")
    with pytest.raises(ConfigError, match=r"^plugins: importing adapter module .*broken_adapter.py failed: RuntimeError: oops"):
        DataConfig(name="c", plugins=[str(broken)])


def test_plugin_from_env_and_dotted_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_path = _plugin(tmp_path, "toy_env")
    monkeypatch.setenv("HBAC_PLUGINS", str(env_path))
    assert "toy_env" in registered()
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "toy_dotted_adapter.py").write_text(PLUGIN.format(name="toy_dotted"))
    monkeypatch.syspath_prepend(str(pkg))
    assert DataConfig(name="c", dataset="toy_dotted", plugins=["toy_dotted_adapter"]).dataset == "toy_dotted"


def test_register_rejects_bad_adapters_and_name_clashes() -> None:
    class NoTask(DatasetAdapter):
        name, task, classes = "bad_task", "regression", ["a", "b"]
        table = channels = path = read = lambda self, *a: None

    with pytest.raises(TypeError, match="task"):
        register(NoTask())
    with pytest.raises(TypeError, match="not a hbac.datasets.DatasetAdapter"):
        register(object())  # type: ignore[arg-type]

    class Clash(DatasetAdapter):
        name, task, classes = "hms", "hms", ["a", "b"]
        table = channels = path = read = lambda self, *a: None

    with pytest.raises(ValueError, match="already registered"):
        register(Clash())
    assert type(get_adapter("hms")).__name__ == "HMSAdapter"
    assert datasets.registered() == sorted(datasets.registered())


def test_synth_lists_and_calls_the_declared_writers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from hbac.cli import main

    assert main(["synth", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == datasets.synthetic_datasets() and {"hms", "chbmit", "bids", "tusz"} <= set(listed)
    assert main(["synth", "bids", "--out", str(tmp_path / "b"), "--n-patients", "1", "--n-files", "1", "--file-s", "20"]) == 0
    assert len(list((tmp_path / "b").glob("sub-*/**/*_eeg.edf"))) == 1


def test_synth_of_a_dataset_without_a_writer_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hbac.cli import main

    monkeypatch.setenv(datasets.PLUGINS_ENV, str(_plugin(tmp_path, "toy_nosynth")))
    assert "toy_nosynth" in registered() and "toy_nosynth" not in datasets.synthetic_datasets()
    with pytest.raises(ConfigError, match=r"dataset 'toy_nosynth' declares no synthetic writer \(datasets with one: .*chbmit"):
        datasets.write_synthetic("toy_nosynth", tmp_path / "out", datasets.SynthOptions())
    assert main(["synth", "toy_nosynth", "--out", str(tmp_path / "out")]) == 2
    assert main(["synth", "nope", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
