"""SzCORE BIDS and TUSZ adapters end to end on synthetic data in their layouts: prepare → train --fold 0 →
detect, and detect's events.tsv read back by the BIDS parser gives the same events."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from hbac.cache import open_cache
from hbac.cache.build import prepare
from hbac.config import load_config
from hbac.datasets.bids import parse_events_tsv
from hbac.engine.experiment import train_experiment
from hbac.inference.detect import detect

TINY = REPO_ROOT / "configs" / "tiny"


def _write(kind: str, root: Path) -> list[Path]:
    from hbac.datasets.synthetic import write_bids, write_tusz

    write = write_bids if kind == "bids" else write_tusz
    return write(root / "data", 3, 2, 180.0, 0) if kind == "bids" else write(root / "data", n_subjects=3, n_files=2,
                                                                                 file_s=180.0, seed=0)


@pytest.mark.parametrize("kind", ["bids", "tusz"])
def test_prepare_train_detect(kind: str, tmp_path: Path) -> None:
    edfs = _write(kind, tmp_path)
    cfg = load_config(TINY / f"{kind}_1d.yaml")
    cfg.data.data_dir = str(tmp_path / "data")
    cfg.data.cache_root = str(tmp_path / "cache")
    cfg.data.workers = 1
    cfg.output_root = str(tmp_path / "outputs")
    cfg.folds.n_folds = 3
    cfg.train.epochs = 1  # nothing here asserts learning (2 epochs were ~3 CPU-s more over both corpora)
    prepare(cfg.data, progress=False)
    cache = open_cache(cfg.data, build=False)
    assert cache.meta["fs"] == 128.0 and len(cache.channels) == (18 if kind == "bids" else 22)
    assert cache.samples.recording_id.nunique() == 6 and cache.samples.group.nunique() == 3
    assert cache.samples.seizure_vote.sum() > 0
    train_experiment(cfg, folds=[0], progress=False)
    scores = json.loads((cfg.output_dir() / "scores.json").read_text())
    assert (cfg.output_dir() / "fold0" / "best.pt").exists() and "seizure" in scores
    assert scores["task"] == "seizure" and scores["dataset"] == kind  # the task's name, not the dataset's
    post = scores["postprocessing"]["params"]
    assert 0 < post["threshold"] < 1 and post["smooth_windows"] in (1, 3, 5)
    res = detect(edfs[0], outputs=Path(cfg.output_root), name=cfg.name, out_dir=tmp_path / "det", progress=False)
    win = pd.read_csv(res["windows_csv"])
    assert len(win) == res["n_windows"] > 0 and win.seizure_prob.between(0, 1).all()
    # the SzCORE events.tsv round trip: the BIDS parser reads back detect's events (2-decimal format)
    back, duration = parse_events_tsv(res["events_tsv"])
    assert duration == pytest.approx(res["duration_s"], abs=0.01)
    assert len(back) == len(res["events"])
    np.testing.assert_allclose(np.array(back).reshape(-1, 2), np.array([e[:2] for e in res["events"]]).reshape(-1, 2),
                               atol=0.01)
    assert res["postprocessing"] == {**post, "max_event_s": 300.0, "merge_gap_s": 90.0}  # detect uses what CV chose
    if kind == "bids":  # export the trained fold to ONNX; detect --onnx matches torch detect without torch models
        from hbac.inference.export import export_onnx

        # 8 check windows (default 64): the parity and latency checks run on them, and the batch latency's 2 x 12
        # runs of 32 windows were most of the export's 2.5 CPU-s of onnxruntime
        rep = export_onnx(cfg.output_dir(), int8=True, n_check=8)
        assert rep["fp32"]["max_abs_diff"] < 1e-4 and rep["fp32"]["size_bytes"] > 10_000
        assert rep["int8"]["size_bytes"] < rep["fp32"]["size_bytes"] and rep["fp32"]["latency_ms_per_window"] > 0
        onx = detect(edfs[0], outputs=Path(cfg.output_root), out_dir=tmp_path / "det_onnx", progress=False,
                     onnx=cfg.output_dir() / "export" / "model.onnx")
        p_onnx = pd.read_csv(onx["windows_csv"]).seizure_prob.to_numpy()
        assert np.abs(p_onnx - win.seizure_prob.to_numpy()).max() < 1e-4
        assert onx["postprocessing"] == res["postprocessing"] and len(onx["events"]) == len(res["events"])
