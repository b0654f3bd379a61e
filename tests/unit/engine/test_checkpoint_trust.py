"""Checkpoints load with weights_only: a crafted pickle payload never runs, and the error names the file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hbac.cli import submit_main
from hbac.engine.checkpoint import load_checkpoint, save_checkpoint
from hbac.errors import CheckpointError
from hbac.features import baseline as FB


class _Payload:
    """Unpickling this calls os.system(cmd): what a malicious best.pt would carry."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _crafted(path: Path, marker: Path) -> None:
    torch.save({"model": {}, "config": {}, "evil": _Payload(f"touch {marker}")}, path)


def test_crafted_checkpoint_does_not_run(tmp_path: Path) -> None:
    marker, ck = tmp_path / "pwned", tmp_path / "best.pt"
    _crafted(ck, marker)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ck)
    assert not marker.exists()
    assert str(ck) in str(e.value) and "not a trusted checkpoint" in str(e.value)


def test_corrupt_checkpoint_names_file(tmp_path: Path) -> None:
    ck = tmp_path / "best.pt"
    save_checkpoint(ck, {"model": {"w": torch.zeros(100)}, "epoch": 1})
    ck.write_bytes(ck.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=str(ck)):
        load_checkpoint(ck)


def test_plain_checkpoint_roundtrip(tmp_path: Path) -> None:
    ck = tmp_path / "last.pt"
    obj = {"model": {"w": torch.arange(3.0)}, "history": [{"epoch": 1, "val_kl": 0.5, "stage": "stage1"}], "best": float("inf"), "ema": None}
    save_checkpoint(ck, obj)
    back = load_checkpoint(ck)
    assert torch.equal(back["model"]["w"], obj["model"]["w"]) and back["history"] == obj["history"] and back["best"] == float("inf")


def test_feature_estimator_roundtrip_and_untrusted_type(tmp_path: Path) -> None:
    import skops.io as sio  # here, not at the top: 3 s to import, and only this test writes a skops archive itself

    rng = np.random.default_rng(0)
    X, t = rng.normal(size=(120, 4)), np.eye(3)[rng.integers(0, 3, 120)]
    est = FB.fit_soft("hgb", X, t, np.ones(120), seed=0)
    ck = tmp_path / "best.pt"
    save_checkpoint(ck, {"kind": "features", "sklearn": FB.dump_estimator(est)})
    back = FB.load_estimator(load_checkpoint(ck), str(ck))
    np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X))
    # a skops archive holding a type outside the trusted list is refused, not built
    blob = torch.frombuffer(bytearray(sio.dumps({"x": _Harmless()})), dtype=torch.uint8)
    with pytest.raises(CheckpointError, match="not a trusted checkpoint"):
        FB.load_estimator({"sklearn": blob}, "evil.pt")


class _Harmless:
    pass


def test_submit_refuses_crafted_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`submit.py`'s entry point over an experiment whose best.pt carries a payload: exit 2, file named, no marker.

    In-process (the script only calls `submit_main`); tests/e2e/test_demo_submit.py runs `python submit.py` itself.
    """
    exp = tmp_path / "outputs" / "evil"
    (exp / "config.yaml").parent.mkdir(parents=True)
    (exp / "config.yaml").write_text(
        "name: evil\ndata: {name: d, data_dir: %s}\nfolds: {n_folds: 2}\n" % (tmp_path / "data")
    )
    marker = tmp_path / "pwned"
    for k in (0, 1):  # every fold's weights must exist before any is loaded
        (exp / f"fold{k}").mkdir()
        _crafted(exp / f"fold{k}" / "best.pt", marker)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.csv").write_text("eeg_id,spectrogram_id,patient_id\n1,1,1\n")
    rc = submit_main(["--data-dir", str(tmp_path / "data"), "--outputs", str(tmp_path / "outputs"),
                      "--experiment", "evil", "--out", str(tmp_path / "sub.csv")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not marker.exists() and not (tmp_path / "sub.csv").exists()
    assert "not a trusted checkpoint" in err and str(exp / "fold0" / "best.pt") in err
