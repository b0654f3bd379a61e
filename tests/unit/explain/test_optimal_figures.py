"""Optimal samples against an independent reading of the OOF file; summary figures for both tasks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hbac.explain.optimal import optimal_samples
from hbac.tasks.kl import kl_score

HMS = ["seizure", "lpd", "gpd", "lrda", "grda", "other"]


def random_oof(n: int, classes: list[str], seed: int = 0) -> pd.DataFrame:
    """A plausible OOF table: soft votes, predictions that lean towards the votes, n_votes 1–25."""
    rng = np.random.default_rng(seed)
    t = rng.dirichlet(np.full(len(classes), 0.4), size=n)
    p = 0.6 * t + 0.4 * rng.dirichlet(np.ones(len(classes)), size=n)
    df = pd.DataFrame({"sample_id": [f"s{i:04d}" for i in range(n)], "fold": 0, "n_votes": rng.integers(1, 26, n)})
    for i, c in enumerate(classes):
        df[f"{c}_vote"] = t[:, i]
    for i, c in enumerate(classes):
        df[f"{c}_pred"] = p[:, i]
    return df


def test_optimal_samples_are_the_top_k_of_the_oof_file(tmp_path):
    path = tmp_path / "oof.csv"
    random_oof(400, HMS).to_csv(path, index=False)
    oof = pd.read_csv(path)
    sel = optimal_samples(oof, HMS, k=3)
    votes = oof[[f"{c}_vote" for c in HMS]].to_numpy().argmax(axis=1)
    preds = oof[[f"{c}_pred" for c in HMS]].to_numpy().argmax(axis=1)
    for ci, c in enumerate(HMS):
        right = oof[(votes == ci) & (preds == ci)].nlargest(3, f"{c}_pred")
        wrong = oof[(votes != ci) & (preds == ci)].nlargest(3, f"{c}_pred")
        got_right = sel[(sel["class"] == c) & (sel["kind"] == "best")].sort_values("rank")
        got_wrong = sel[(sel["class"] == c) & (sel["kind"] == "mistake")].sort_values("rank")
        assert got_right["sample_id"].tolist() == right["sample_id"].tolist()
        assert got_wrong["sample_id"].tolist() == wrong["sample_id"].tolist()
        assert np.allclose(got_right["prob"], right[f"{c}_pred"])
        assert (got_right["true"] == c).all() and (got_wrong["true"] != c).all()
    assert len(sel) == 6 * 2 * 3


def test_optimal_samples_class_filter_and_errors():
    oof = random_oof(100, HMS)
    sel = optimal_samples(oof, HMS, k=2, only=["lpd"])
    assert set(sel["class"]) == {"lpd"}
    with pytest.raises(ValueError, match="unknown class 'nope'"):
        optimal_samples(oof, HMS, k=2, only=["nope"])
    with pytest.raises(ValueError, match="--samples"):
        optimal_samples(oof, HMS, k=0)


def test_kl_contributions_sum_to_the_metric_and_confusions_count_rows():
    # hbac.explain.figures in the two tests that use it, not at the top: it imports matplotlib and sklearn.metrics
    # (1 s of collection in every pytest-xdist worker; test_report imports this file for `random_oof`)
    from hbac.explain.figures import confusion, kl_by_votes, kl_per_class, reliability

    oof = random_oof(300, HMS, seed=1)
    t = oof[[f"{c}_vote" for c in HMS]].to_numpy()
    p = oof[[f"{c}_pred" for c in HMS]].to_numpy()
    assert kl_per_class(t, p).sum() == pytest.approx(kl_score(t, p), rel=1e-9)
    assert confusion(t, p, weighted=False).sum() == pytest.approx(300)
    assert confusion(t, p, weighted=True).sum() == pytest.approx(300)
    # vote-weighted rows are the summed vote shares per class
    assert np.allclose(confusion(t, p, weighted=True).sum(axis=1), t.sum(axis=0))
    kv = kl_by_votes(t, p, oof["n_votes"].to_numpy())
    assert kv["n"].sum() == 300
    r = reliability(t, p)
    assert r["n"].sum() == t.size and ((r["pred"] >= 0) & (r["pred"] <= 1)).all()


def test_summary_figures_per_task():
    from hbac.explain.figures import summary_figures  # here: see the test above

    figs = summary_figures(random_oof(120, HMS), HMS)
    assert set(figs) == {"confusion_argmax", "confusion_votes", "kl_per_class", "reliability", "kl_by_votes"}
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.2).astype(float)
    s = np.clip(0.6 * y + 0.4 * rng.random(200), 0, 1)
    sz = pd.DataFrame({"sample_id": range(200), "n_votes": 1, "background_vote": 1 - y, "seizure_vote": y,
                       "background_pred": 1 - s, "seizure_pred": s})
    figs = summary_figures(sz, ["background", "seizure"])
    assert set(figs) == {"confusion_argmax", "confusion_votes", "roc_pr", "reliability", "seizure_prob_hist"}
