"""Shared fixtures: repository paths, the real data folder (skipped when absent), synthetic HMS data."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SYNTH_HMS_EEGS = 24  # small: the whole suite must stay fast on a 2-core CPU
SYNTH_HMS_SEED = 0
SYNTH_HMS_TEST = 4
E2E_DIR = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e/ (training runs, the demo, submit, detect) carries the `slow` marker."""
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="session")
def synth_hms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic HMS folder in the real layout: 24 train EEGs (seed 0), 4 test EEGs. Do not modify it."""
    from hbac.datasets.synthetic import write_hms

    out = tmp_path_factory.mktemp("synth_hms")
    write_hms(out, n_eegs=SYNTH_HMS_EEGS, seed=SYNTH_HMS_SEED, n_test=SYNTH_HMS_TEST)
    return out
