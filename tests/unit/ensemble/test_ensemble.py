"""OOF blending: weight fitting on the simplex, member alignment, run_ensemble outputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hbac.config import EnsembleConfig
from hbac.datasets.edf_montage import SEIZURE_CLASSES
from hbac.datasets.hms import HMS_CLASSES
from hbac.ensemble import align_oofs, blend, fit_weights, load_member_oof, run_ensemble
from hbac.errors import AlignmentError
from hbac.leaderboard import build_leaderboard
from hbac.tasks import get_task
from hbac.tasks.kl import kl_score, score_oof

N_ROWS = 400


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_problem(seed: int = 0, n: int = N_ROWS, classes: list[str] = HMS_CLASSES, noise=(0.8, 1.2, 1.6)):
    """(base table, targets (N, K), {name: preds}) with independent logit noise per member."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    t = rng.dirichlet(np.full(k, 0.5), size=n)
    base = pd.DataFrame({
        "sample_id": np.arange(1000, 1000 + n),
        "recording_id": [f"rec{i // 40:02d}" for i in range(n)],
        "group": [f"p{i // 80:02d}" for i in range(n)],
        "start_s": 10.0 * (np.arange(n) % 40),
        "duration_s": 10.0,
        "fold": (np.arange(n) // 80) % 5,  # patient-grouped folds, recordings never split
        "n_votes": rng.integers(1, 20, n),
    })
    for i, c in enumerate(classes):
        base[f"{c}_vote"] = t[:, i]
    preds = {f"m{j}": _softmax(np.log(t + 0.05) + s * rng.standard_normal((n, k))) for j, s in enumerate(noise)}
    return base, t, preds


def oof_frame(base: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    """An experiment-style OOF table: base columns then `<class>_pred`."""
    classes = [c[:-5] for c in base.columns if c.endswith("_vote")]
    df = base.copy()
    for i, c in enumerate(classes):
        df[f"{c}_pred"] = p[:, i]
    return df


def write_member(root: Path, name: str, df: pd.DataFrame, task: str = "hms", n_params: int = 1000, train_time_s: float = 60.0) -> None:
    """outputs/<name>/oof.csv and a scores.json like an experiment's."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    df.to_csv(d / "oof.csv", index=False)
    classes = [c[:-5] for c in df.columns if c.endswith("_vote")]
    t = df[[f"{c}_vote" for c in classes]].to_numpy()
    p = df[[f"{c}_pred" for c in classes]].to_numpy()
    (d / "scores.json").write_text(json.dumps({
        "task": task, "metric": "kl", "cv": kl_score(t, p), "missing_folds": [],
        "n_params": n_params, "train_time_s": train_time_s, "model": "2d",
    }))


# --------------------------------------------------------------------------- blend / fit_weights


def test_blend_is_weighted_average():
    a = np.array([[0.2, 0.8], [0.5, 0.5]])
    b = np.array([[0.6, 0.4], [0.1, 0.9]])
    out = blend([a, b], [3, 1])  # weights are normalised
    np.testing.assert_allclose(out, 0.75 * a + 0.25 * b)
    with pytest.raises(ValueError, match="2 weights for 1 members|1 members"):
        blend([a], [0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        blend([a, b], [1.5, -0.5])


def test_fit_weights_beats_every_member_and_matches_grid_search():
    _, t, preds = make_problem(seed=1, noise=(0.9, 1.1))
    w = fit_weights(t, list(preds.values()))
    assert w.shape == (2,) and (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-12)
    blended = kl_score(t, blend(list(preds.values()), w))
    singles = [kl_score(t, p) for p in preds.values()]
    assert blended < min(singles) - 1e-3  # independent noise: averaging must help
    # independent check: brute-force grid over the 1-simplex
    grid = [kl_score(t, a * preds["m0"] + (1 - a) * preds["m1"]) for a in np.linspace(0, 1, 201)]
    assert blended <= min(grid) + 1e-7
    assert 0.2 < w[0] < 0.9  # the less noisy member gets the larger share
    assert w[0] > w[1]


def test_fit_weights_useless_member_gets_no_weight():
    _, t, preds = make_problem(seed=2, noise=(0.8, 1.0))
    rng = np.random.default_rng(99)
    useless = rng.dirichlet(np.ones(t.shape[1]) * 0.3, size=len(t))  # unrelated to the targets
    w = fit_weights(t, [preds["m0"], useless, preds["m1"]])
    assert w[1] < 0.02
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()


def test_fit_weights_never_worse_than_best_single_member_on_mask():
    _, t, preds = make_problem(seed=3)
    mask = np.random.default_rng(0).random(len(t)) < 0.3
    plist = list(preds.values())
    w = fit_weights(t, plist, mask)
    fit = kl_score(t[mask], blend(plist, w)[mask])
    assert fit <= min(kl_score(t[mask], p[mask]) for p in plist) + 1e-12
    # one dominant member: a perfect predictor must take (almost) all the weight
    w2 = fit_weights(t, [plist[0], t.copy()])
    assert w2[1] > 0.999
    assert fit_weights(t, [plist[0]]).tolist() == [1.0]
    with pytest.raises(ValueError, match="no rows"):
        fit_weights(t, plist, np.zeros(len(t), bool))


# --------------------------------------------------------------------------- alignment


def test_align_handles_row_order_and_reorders_preds():
    base, _, preds = make_problem(seed=4)
    a = oof_frame(base, preds["m0"])
    b = oof_frame(base, preds["m1"]).sample(frac=1.0, random_state=0).reset_index(drop=True)
    out_base, out = align_oofs({"a": a, "b": b})
    assert out_base["sample_id"].tolist() == base["sample_id"].tolist()
    np.testing.assert_allclose(out["b"], preds["m1"])
    np.testing.assert_allclose(out["a"], preds["m0"])
    assert not any(c.endswith("_pred") for c in out_base.columns)


def test_align_refuses_missing_and_extra_rows():
    base, _, preds = make_problem(seed=5)
    a = oof_frame(base, preds["m0"])
    b = oof_frame(base, preds["m1"]).iloc[7:]
    with pytest.raises(AlignmentError, match=r"member 'b' lacks 7 rows of 'a' \(e\.g\. sample_id 1000, 1001"):
        align_oofs({"a": a, "b": b})
    c = pd.concat([oof_frame(base, preds["m1"]), a.iloc[:3].assign(sample_id=[5, 6, 7])], ignore_index=True)
    with pytest.raises(AlignmentError, match=r"member 'c' has 3 rows not in 'a'"):
        align_oofs({"a": a, "c": c})


def test_align_refuses_different_folds():
    base, _, preds = make_problem(seed=6)
    a = oof_frame(base, preds["m0"])
    b = oof_frame(base, preds["m1"])
    b.loc[10, "fold"] = (b.loc[10, "fold"] + 1) % 5
    sid = b.loc[10, "sample_id"]
    with pytest.raises(AlignmentError, match=rf"member 'b'.*sample_id {sid} is in fold {a.loc[10, 'fold']} for 'a' but fold {b.loc[10, 'fold']} for 'b'"):
        align_oofs({"a": a, "b": b})


def test_align_refuses_different_targets_and_classes():
    base, _, preds = make_problem(seed=7)
    a = oof_frame(base, preds["m0"])
    b = oof_frame(base, preds["m1"])
    b.loc[3, "lpd_vote"] += 1e-3
    with pytest.raises(AlignmentError, match=r"member 'b' has different targets from 'a' on 1 rows.*lpd_vote"):
        align_oofs({"a": a, "b": b})
    b.loc[3, "lpd_vote"] -= 1e-3 - 1e-8  # within tolerance: accepted
    align_oofs({"a": a, "b": b})
    c = a.rename(columns={"other_vote": "misc_vote", "other_pred": "misc_pred"})
    with pytest.raises(AlignmentError, match=r"member 'c' has classes"):
        align_oofs({"a": a, "c": c})


def test_load_member_oof_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ghost[/\\]oof\.csv.*python -m hbac train"):
        load_member_oof(tmp_path, "ghost")
    base, _, preds = make_problem(seed=8, n=20)
    df = oof_frame(base, preds["m0"])
    df.loc[4, "gpd_pred"] = np.nan
    write_member(tmp_path, "nanny", df.fillna(0.0))
    df.to_csv(tmp_path / "nanny" / "oof.csv", index=False)
    with pytest.raises(ValueError, match=r"nanny[/\\]oof\.csv: column 'gpd_pred'.*sample_id 1004"):
        load_member_oof(tmp_path, "nanny")
    df.loc[4, "gpd_pred"] = 0.5  # row no longer sums to 1
    df.to_csv(tmp_path / "nanny" / "oof.csv", index=False)
    with pytest.raises(ValueError, match=r"not summing to 1.*sample_id 1004"):
        load_member_oof(tmp_path, "nanny")


# --------------------------------------------------------------------------- run_ensemble


def _setup_outputs(root: Path, seed: int = 10, classes=HMS_CLASSES, task: str = "hms"):
    base, t, preds = make_problem(seed=seed, classes=classes)
    rng = np.random.default_rng(seed)
    for j, (name, p) in enumerate(preds.items()):
        df = oof_frame(base, p).sample(frac=1.0, random_state=j).reset_index(drop=True)  # own row order
        write_member(root, name, df, task=task, n_params=1000 * (j + 1), train_time_s=10.0 * (j + 1))
    write_member(root, "junk", oof_frame(base, rng.dirichlet(np.ones(len(classes)), size=len(t))), task=task)
    return base, t, preds


@pytest.mark.parametrize("fit_on", ["all", "min_votes"])
def test_run_ensemble_writes_outputs_and_rescored_cv_matches(tmp_path, capsys, fit_on):
    base, t, preds = _setup_outputs(tmp_path)
    members = ["m0", "m1", "m2", "junk"]
    cfg = EnsembleConfig(name="blend", members=members, fit_on=fit_on, min_votes=10, output_root=str(tmp_path))
    scores = run_ensemble(cfg)
    out = tmp_path / "blend"

    w = json.loads((out / "weights.json").read_text())
    assert w["members"] == members and w["fit_on"] == fit_on and w["min_votes"] == 10
    ws = np.array([w["weights"][m] for m in members])
    assert (ws >= 0).all() and ws.sum() == pytest.approx(1.0)
    assert w["weights"]["junk"] < 0.02

    oof = pd.read_csv(out / "oof.csv")
    assert len(oof) == len(base) and set(oof["sample_id"]) == set(base["sample_id"])
    assert [c for c in oof.columns if c.endswith("_pred")] == [f"{c}_pred" for c in HMS_CLASSES]
    rescored = score_oof(oof)
    assert rescored["kl"] == pytest.approx(scores["cv"], abs=1e-9)
    assert rescored["kl_min_votes"] == pytest.approx(scores["cv_min_votes"], abs=1e-9)

    on_disk = json.loads((out / "scores.json").read_text())
    for key in ("task", "metric", "cv", "cv_min_votes", "n_rows", "folds", "missing_folds", "model", "backbone",
                "inputs", "n_params", "train_time_s", "created", "members"):
        assert key in on_disk, key
    assert on_disk["task"] == "hms" and on_disk["model"] == "ensemble" and on_disk["inputs"] == members
    assert on_disk["n_params"] == 1000 + 2000 + 3000 + 1000
    assert on_disk["train_time_s"] == pytest.approx(10 + 20 + 30 + 60)
    assert sorted(on_disk["folds"]) == ["0", "1", "2", "3", "4"]
    f2 = oof[oof["fold"] == 2]
    assert on_disk["folds"]["2"]["kl"] == pytest.approx(
        kl_score(f2[[f"{c}_vote" for c in HMS_CLASSES]].to_numpy(), f2[[f"{c}_pred" for c in HMS_CLASSES]].to_numpy()))
    assert yaml.safe_load((out / "config.yaml").read_text())["members"] == members

    # the blend is at least as good as every member on the rows it was fitted on
    mask = np.ones(len(base), bool) if fit_on == "all" else base["n_votes"].to_numpy() >= 10
    best_single = min(kl_score(t[mask], p[mask]) for p in preds.values())
    by_id = oof.set_index("sample_id").loc[base["sample_id"]]
    blended = by_id[[f"{c}_pred" for c in HMS_CLASSES]].to_numpy()
    assert kl_score(t[mask], blended[mask]) <= best_single + 1e-12
    for m in members:
        assert on_disk["members"][m]["weight"] == pytest.approx(w["weights"][m])
        assert on_disk["members"][m]["cv"] >= on_disk["cv"] - 1e-12 or fit_on == "min_votes"

    printed = capsys.readouterr().out
    assert "m0" in printed and "junk" in printed and "blend" in printed and f"{scores['cv']:.4f}" in printed


def test_run_ensemble_refusals(tmp_path):
    _setup_outputs(tmp_path, classes=SEIZURE_CLASSES, task="chbmit")
    with pytest.raises(FileNotFoundError, match="missing_exp"):
        run_ensemble(EnsembleConfig(name="e", members=["m0", "missing_exp"], output_root=str(tmp_path)))
    with pytest.raises(ValueError, match="lists itself"):
        run_ensemble(EnsembleConfig(name="m0", members=["m0", "m1"], output_root=str(tmp_path)))
    (tmp_path / "m2" / "config.yaml").write_text(yaml.safe_dump({"name": "m2", "data": {"name": "x"}}))
    with pytest.raises(ValueError, match="holds an experiment"):
        run_ensemble(EnsembleConfig(name="m2", members=["m0", "m1"], output_root=str(tmp_path)))
    # CHB-MIT has n_votes 1 everywhere in real data; here force it to check the message
    for m in ("m0", "m1"):
        p = tmp_path / m / "oof.csv"
        pd.read_csv(p).assign(n_votes=1).to_csv(p, index=False)
    with pytest.raises(ValueError, match="fit_on: all"):
        run_ensemble(EnsembleConfig(name="e", members=["m0", "m1"], fit_on="min_votes", output_root=str(tmp_path)))
    assert not (tmp_path / "e").exists()


def test_run_ensemble_chbmit(tmp_path, capsys):
    _setup_outputs(tmp_path, classes=SEIZURE_CLASSES, task="chbmit")
    scores = run_ensemble(EnsembleConfig(name="e", members=["m0", "m1"], output_root=str(tmp_path)))
    assert scores["task"] == "seizure" and scores["dataset"] == "chbmit"
    assert scores["metric"] == "event_f1" and scores["direction"] == "max" and scores["cv"] == scores["event_f1"]
    assert scores["fit_objective"] == "log loss" and isinstance(scores.get("seizure"), dict)
    # the blend is scored by the seizure task, and its log loss is no worse than the best member's
    oof = pd.read_csv(tmp_path / "e" / "oof.csv")
    assert get_task("seizure").score_oof(oof)["event_f1"] == pytest.approx(scores["cv"])
    assert scores["fit_loss"] <= min(m["fit_loss"] for m in scores["members"].values()) + 1e-12
    row = build_leaderboard(tmp_path).set_index("name").loc["e"]
    assert row["kind"] == "ensemble" and row["task"] == "seizure" and row["dataset"] == "chbmit"
    assert row["auroc"] == pytest.approx(scores["auroc"], nan_ok=True)
    printed = capsys.readouterr().out
    assert "CV event F1" in printed and "fit log loss" in printed and "KL" not in printed
