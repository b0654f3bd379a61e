"""`hbac tune`: an Optuna study on tiny synthetic CHB-MIT improves on its first trial, stores every trial, and
resumes from its storage (a second run adds only the missing trials); bad tune files fail naming the key."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from conftest import REPO_ROOT

from hbac.engine.tune import load_tune, tune
from hbac.errors import ConfigError


def _tune_file(tmp_path: Path, data: Path, cache_root: Path, **extra) -> Path:
    """A tune file over the shared synthetic CHB-MIT (`data`) and its prepared cache (`cache_root`), outputs in `tmp_path`."""
    d = {
        "experiment": str(REPO_ROOT / "configs" / "tiny" / "chbmit_1d.yaml"),
        "folds": [0],
        "sampler": "random",
        "pruner": "none",
        "objective": "auroc",
        "seed": 0,
        "set": {"data.data_dir": str(data), "data.cache_root": str(cache_root), "output_root": str(tmp_path / "out"),
                "folds.n_folds": 2, "train.epochs": 1, "train.max_steps_per_epoch": 4},
        # 1 epoch of 4 steps a trial (was 2 full epochs of 9: 20 -> ~9 CPU-s for the 3 + 1 trials); fold-0 window AUROC,
        # first trial (lr 1e-7) vs best: 0.168 vs 0.918 (train seed 42), 0.590 vs 0.917 (seed 1), 0.411 vs 0.779 (seed 2);
        # with every lr 1e-12 best = first = 0.168 and the test fails
        # the first trial is a deliberately poor learning rate: the search must find better
        "start": {"train.lr": 1.0e-7},
        "space": {"train.lr": {"choices": [1.0e-7, 3.0e-3, 1.0e-2]}},
        **extra,
    }
    p = tmp_path / "tune.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_tune_improves_and_resumes(tmp_path: Path, synth_chbmit: Path, chbmit_cache_root: Path) -> None:
    path = _tune_file(tmp_path, synth_chbmit, chbmit_cache_root / "cache")
    storage = str(tmp_path / "study.journal")  # Optuna's journal file storage (shareable between processes)
    r = tune(path, trials=3, storage=storage)
    assert r["n_trials"] == 3 and r["n_complete"] == 3
    assert r["best_value"] > r["first_value"], r  # window AUROC better than with the enqueued lr = 1e-7
    study = optuna.load_study(study_name=r["study"], storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(storage)))
    first = [t.params for t in study.trials]
    assert first[0] == {"train.lr": 1.0e-7}
    r2 = tune(path, trials=4, storage=storage)  # resume: one more trial, the first three untouched
    assert r2["n_trials"] == 4 and r2["best_value"] >= r["best_value"]
    study = optuna.load_study(study_name=r["study"], storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(storage)))
    assert [t.params for t in study.trials][:3] == first
    assert (tmp_path / "out" / "tune" / r["study"] / "best.json").exists()
    assert tune(path, trials=4, storage=storage)["n_trials"] == 4  # nothing left to run


def test_tune_file_errors_name_the_key(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"  # only the file is read: no data needed
    with pytest.raises(ConfigError, match="unknown key"):
        load_tune(_tune_file(tmp_path, data, cache, trials=3))
    with pytest.raises(ConfigError, match="nope"):
        load_tune(_tune_file(tmp_path, data, cache, space={"train.nope": {"low": 0, "high": 1}}))
    with pytest.raises(ConfigError, match="choices"):
        load_tune(_tune_file(tmp_path, data, cache, space={"train.lr": {"low": 0.1}}))
