"""A fold's files and scores.json: one writer each, strict JSON, the task's metric names."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from hbac.engine.outputs import plot_history, write_fold_files, write_scores
from hbac.tasks import get_task


def strict(text: str):
    def refuse(c: str):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=refuse)


def seizure_history() -> list[dict]:
    return [{"epoch": e, "stage": "stage1", "epoch_in_stage": e, "lr": 1e-3, "train_loss": 0.5 / e,
             "val_event_f1": f, "val_auroc": a, "val_fp_per_24h": float("nan"), "time_s": 1.0}
            for e, f, a in ((1, 0.2, 0.7), (2, 0.6, 0.8), (3, 0.5, 0.9))]


def test_fold_files_for_a_seizure_fold(tmp_path) -> None:
    task = get_task("seizure")
    oof = pd.DataFrame({"sample_id": ["a"], "fold": [0], "background_pred": [0.3], "seizure_pred": [0.7]})
    write_fold_files(tmp_path, task, seizure_history())
    assert (tmp_path / "history.csv").exists() and not (tmp_path / "oof.csv").exists()  # mid-fold: history only
    write_fold_files(tmp_path, task, seizure_history(), oof, {"fold": 0, "best_score": float("nan"), "best_epoch": 2},
                     title="x fold 0")
    hist = pd.read_csv(tmp_path / "history.csv")
    assert list(hist.columns) == list(seizure_history()[0]) and (tmp_path / "curve.png").stat().st_size > 1000
    fj = strict((tmp_path / "fold.json").read_text())
    assert fj == {"fold": 0, "best_score": None, "best_epoch": 2, "metric": "event_f1", "direction": "max"}
    assert pd.read_csv(tmp_path / "oof.csv").equals(oof)


def test_curve_names_the_task_metric(tmp_path) -> None:
    labels = plot_history(pd.DataFrame(seizure_history()), tmp_path / "c.png", get_task("seizure"))
    assert "val event F1" in labels and "val AUROC" in labels and labels[-1] == "val event F1 (higher is better)"
    assert not any("KL" in s for s in labels)
    hms_hist = pd.DataFrame([{"epoch": 1, "stage": "stage1", "train_loss": 1.0, "val_kl": 0.9, "val_kl_min_votes": 0.8}])
    labels = plot_history(hms_hist, tmp_path / "h.png", get_task("hms"))
    assert labels[-1] == "val KL (lower is better)" and "val KL (n_votes >= 10)" in labels


def test_scores_json_is_strict_and_complete(tmp_path) -> None:
    written = write_scores(tmp_path, {"task": "seizure", "cv": float("nan"), "auroc": float("inf"), "folds": {"0": {"x": math.nan}}})
    text = (tmp_path / "scores.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    s = strict(text)
    assert s == written and s["cv"] is None and s["auroc"] is None and s["folds"]["0"]["x"] is None
    with pytest.raises(ValueError):
        strict('{"cv": NaN}')  # the parser used above does refuse what json.dump(allow_nan=True) would write


def test_curve_leaves_the_callers_matplotlib_backend_alone(tmp_path) -> None:
    """A notebook that trains in-process keeps its backend (inline plots): the fold's curve is drawn on a bare
    Figure, with no `matplotlib.use` and no figure left open in pyplot."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # stands in for a notebook's inline backend
    try:
        plot_history(pd.DataFrame(seizure_history()), tmp_path / "c.png", get_task("seizure"))
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
    finally:
        matplotlib.use(before)


@pytest.mark.parametrize("loss", [0.00012345, 1.2345, 12345.0])
def test_curve_labels_are_not_cut_at_the_edges(tmp_path, loss: float) -> None:
    """Fixed margins (no tight_layout): tick labels up to 7 characters and both axis labels stay inside the image,
    so the outermost pixel columns and rows are background."""
    from matplotlib.image import imread

    hist = pd.DataFrame(seizure_history())
    hist["train_loss"] = loss * hist["train_loss"] / hist["train_loss"].max()
    plot_history(hist, tmp_path / "c.png", get_task("seizure"), title="a long experiment name fold 0")
    img = imread(tmp_path / "c.png")[..., :3]
    edges = np.concatenate([img[:, :3].reshape(-1, 3), img[:, -3:].reshape(-1, 3), img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3)])
    assert edges.min() > 0.95, "text or lines reach the edge of curve.png"
