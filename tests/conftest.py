"""Shared fixtures: repository paths, the real data folder (skipped when absent), synthetic data, and the
tiny experiments several test files use, trained once per test run.

Session fixtures that build something go through `shared_folder`: one build per run, also across
pytest-xdist workers (a file lock; the other workers wait, then read the result). Tests read these
folders and never modify them: a test that changes one copies it into its own `tmp_path` first
(`shutil.copytree`).
"""
from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # `-n N`: N workers share the cores, so one thread each
    for _var in ("OMP_NUM_THREADS", "HBAC_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
        os.environ.setdefault(_var, "1")  # before torch/polars are imported; subprocesses inherit it

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
TINY = REPO_ROOT / "configs" / "tiny"
SYNTH_HMS_EEGS = 24  # small: the whole suite must stay fast on a 2-core CPU
SYNTH_HMS_SEED = 0
SYNTH_HMS_TEST = 4
# synthetic CHB-MIT for the trained seizure detector: 4 patients × 3 files × 240 s (≈ 34 MB of EDF,
# 564 windows, 7 seizures for seed 0); 2 patient-grouped folds of 2 patients, CHBMIT_EPOCHS epochs (the config has 6).
# After 4 epochs: OOF window AUROC 0.980 (bar 0.85), AUPRC 0.955, event sensitivity 0.857 (bar 0.5), precision 1.0,
# held-out recording AUROC 0.992 (bar 0.8); with lr 1e-12 the learning, detect-ensemble and stream tests fail.
CHBMIT_PATIENTS, CHBMIT_FILES, CHBMIT_FILE_S, CHBMIT_SEED, CHBMIT_FOLDS, CHBMIT_EPOCHS = 4, 3, 240.0, 0, 2, 4
E2E_DIR = Path(__file__).resolve().parent / "e2e"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> Optional[bool]:
    """`-m "not slow"` (the fast tier) leaves tests/e2e/ unimported: all of it is slow, and its modules import
    onnx, captum, jupytext, tensorboard, optuna (seconds of collection in every pytest-xdist worker)."""
    if collection_path == E2E_DIR and " ".join(str(config.getoption("markexpr", "")).split()) == "not slow":
        return True
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything alive after collection (torch, timm, pandas: about 570,000 objects) out of the cyclic
    garbage collector's sight: each full collection then skips them, and pytest's five `gc.collect()` at the
    end of a session (to catch unraisable exceptions) take milliseconds instead of about 3 s per worker."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e/ (training runs, the demo, submit, detect) carries the `slow` marker."""
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` for the block (released by the kernel if the holder dies)."""
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp folder of this test run, the same for every pytest-xdist worker (each worker's basetemp is below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]) -> Path:
    """`<run temp>/<name>`, filled by `build(folder)` once per test run (whichever process comes first; others wait)."""
    folder = run_root(tmp_path_factory) / name
    done = folder / ".built"
    with _flock(folder.with_name(f".{name}.lock")):
        if not done.exists():
            if folder.exists():  # a build that failed earlier in this run: start again
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the repository (real HMS and CHB-MIT files); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder not found: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_hms(shared_data: Path) -> Path:
    """`../shared/data/hms` (real train.csv subset, a few parquet files, the test example); skips when absent."""
    p = shared_data / "hms"
    if not (p / "train.csv").is_file():
        pytest.skip(f"real HMS data not found: {p}")
    return p


def copy_hms_subset(src: Path, out: Path, n_eegs: int) -> Path:
    """The first `n_eegs` train EEGs of the HMS folder `src` (their train.csv rows, EEG and spectrogram files) copied to `out`."""
    import pandas as pd  # here, not at the top: the pytest-xdist controller loads this file before it starts the workers (1 s)

    train = pd.read_csv(src / "train.csv")
    train = train[train.eeg_id.isin(pd.unique(train.eeg_id)[:n_eegs])]
    for sub, ids in (("train_eegs", train.eeg_id), ("train_spectrograms", train.spectrogram_id)):
        (out / sub).mkdir(parents=True)
        for i in pd.unique(ids):
            shutil.copy(src / sub / f"{i}.parquet", out / sub)
    train.to_csv(out / "train.csv", index=False)
    return out


@pytest.fixture(scope="session")
def synth_hms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic HMS folder in the real layout: 24 train EEGs (seed 0), 4 test EEGs. Do not modify it."""
    from hbac.datasets.synthetic import write_hms

    return shared_folder(tmp_path_factory, "synth_hms",
                         lambda out: write_hms(out, n_eegs=SYNTH_HMS_EEGS, seed=SYNTH_HMS_SEED, n_test=SYNTH_HMS_TEST))


@pytest.fixture(scope="session")
def synth_hms_60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo-sized synthetic HMS folder (60 train EEGs, ~400 windows, seed 0, 4 test EEGs): enough rows
    for the tiny models to learn from (about 16 CPU-s to write, once per run). Do not modify it."""
    from hbac.datasets.synthetic import write_hms

    return shared_folder(tmp_path_factory, "synth_hms_60", lambda out: write_hms(out / "hms", n_eegs=60, seed=0, n_test=4)) / "hms"


@pytest.fixture(scope="session")
def synth_hms_cache(synth_hms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root holding `synth_hms` prepared with configs/tiny/data_hms.yaml (every tiny HMS experiment's data).

    Point a tiny HMS experiment's `data.cache_root` here to skip its prepare; the fold files land in the
    folder beside it (`folds/`), shared too. Do not modify it.
    """
    from hbac.cache.build import prepare

    def build(root: Path) -> None:
        prepare(tiny_hms_config("hms_1d.yaml", synth_hms, root / "cache", root / "outputs").data, progress=False)

    return shared_folder(tmp_path_factory, "synth_hms_cache", build) / "cache"


def tiny_hms_config(config: str, data_dir: Path, cache_root: Path, output_root: Path, overrides: Optional[dict] = None) -> Any:
    """configs/tiny/<config> pointed at `data_dir`, `cache_root` and `output_root`, with `overrides` (validated on load)."""
    from hbac.config import deep_update, load_config

    paths = {"data": {"data_dir": str(data_dir), "cache_root": str(cache_root)}, "output_root": str(output_root)}
    return load_config(TINY / config, deep_update(paths, overrides or {}))


@pytest.fixture(scope="session")
def trained_hms_features(synth_hms: Path, synth_hms_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """configs/tiny/hms_features.yaml trained on all 3 folds of `synth_hms` (the config as shipped): its config. Read only."""
    from hbac.engine.experiment import train_experiment

    def build(root: Path) -> None:
        train_experiment(tiny_hms_config("hms_features.yaml", synth_hms, synth_hms_cache, root / "outputs"), progress=False)

    root = shared_folder(tmp_path_factory, "trained_hms_features", build)
    return tiny_hms_config("hms_features.yaml", synth_hms, synth_hms_cache, root / "outputs")


# one epoch of two steps per stage: a trained model of every fold in seconds (tests that need learning train their own)
HMS_1D_QUICK = {"train": {"epochs": 1, "max_steps_per_epoch": 2, "stage2": {"epochs": 1}}}


@pytest.fixture(scope="session")
def trained_hms_1d(synth_hms: Path, synth_hms_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """configs/tiny/hms_1d.yaml (tiny_hms_1d) on `synth_hms`, all 3 folds, `HMS_1D_QUICK` epochs: its config. Read only."""
    from hbac.engine.experiment import train_experiment

    def build(root: Path) -> None:
        train_experiment(tiny_hms_config("hms_1d.yaml", synth_hms, synth_hms_cache, root / "outputs", HMS_1D_QUICK), progress=False)

    root = shared_folder(tmp_path_factory, "trained_hms_1d", build)
    return tiny_hms_config("hms_1d.yaml", synth_hms, synth_hms_cache, root / "outputs", HMS_1D_QUICK)


@pytest.fixture(scope="session")
def synth_chbmit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic CHB-MIT: 4 patients × 3 files × 240 s, seed 0 (chbNN/… layout). Do not modify it."""
    from hbac.datasets.synthetic import write_chbmit

    return shared_folder(tmp_path_factory, "synth_chbmit", lambda out: write_chbmit(
        out, n_patients=CHBMIT_PATIENTS, seed=CHBMIT_SEED, n_files=CHBMIT_FILES, file_s=CHBMIT_FILE_S))


def tiny_chbmit_config(data_dir: Path, root: Path, config: str = "chbmit_1d.yaml", outputs: str = "outputs",
                       overrides: Optional[dict] = None) -> Any:
    """configs/tiny/<config> pointed at `data_dir` (cache and outputs under `root`), `CHBMIT_FOLDS` folds, `overrides`."""
    from hbac.config import deep_update, load_config

    return load_config(TINY / config, deep_update({
        "data": {"data_dir": str(data_dir), "cache_root": str(root / "cache")},
        "output_root": str(root / outputs),
        "folds": {"n_folds": CHBMIT_FOLDS},
    }, overrides or {}))


@pytest.fixture(scope="session")
def chbmit_cache_root(synth_chbmit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose `cache/` holds `synth_chbmit` prepared with configs/tiny/data_chbmit.yaml. Do not modify it."""
    from hbac.cache.build import prepare

    return shared_folder(tmp_path_factory, "chbmit_cache",
                         lambda root: prepare(tiny_chbmit_config(synth_chbmit, root).data, progress=False))


@pytest.fixture(scope="session")
def trained_chbmit(synth_chbmit: Path, chbmit_cache_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """configs/tiny/chbmit_1d.yaml trained over `CHBMIT_FOLDS` patient-grouped folds of `synth_chbmit` for `CHBMIT_EPOCHS`
    epochs: its config. Read only."""
    from hbac.engine.experiment import train_experiment

    def cfg(root: Path) -> Any:
        return tiny_chbmit_config(synth_chbmit, chbmit_cache_root,
                                  overrides={"output_root": str(root / "outputs"), "train": {"epochs": CHBMIT_EPOCHS}})

    root = shared_folder(tmp_path_factory, "trained_chbmit", lambda root: train_experiment(cfg(root), progress=False))
    return cfg(root)
