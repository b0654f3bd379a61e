"""The Task API: registry, columns, OOF scoring (strict JSON), direction, tie-breaks, fit objective."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from hbac.config import DataConfig
from hbac.errors import ConfigError
from hbac.tasks import get_task, json_safe, task_for, task_from_classes, task_names
from hbac.tasks.events import seizure_scores
from hbac.tasks.kl import kl_score
from hbac.tasks.kl import score_oof as kl_score_oof

HMS = ["seizure", "lpd", "gpd", "lrda", "grda", "other"]
WINDOW_S, STRIDE_S = 10.0, 5.0


def strict_loads(text: str):
    """json.loads that refuses NaN / Infinity (what a strict parser in another language does)."""
    def bad(c: str):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def hms_oof(n: int = 60, seed: int = 0, high_votes: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = rng.dirichlet(np.ones(6) * 0.5, n)
    p = 0.6 * t + 0.4 * rng.dirichlet(np.ones(6), n)
    df = pd.DataFrame({"sample_id": np.arange(n), "fold": np.arange(n) % 3,
                       "n_votes": rng.integers(1, 20, n) if high_votes else np.ones(n, int)})
    for i, c in enumerate(HMS):
        df[f"{c}_vote"] = t[:, i]
    for i, c in enumerate(HMS):
        df[f"{c}_pred"] = p[:, i]
    return df


def seizure_oof(quality: float = 1.0, n_rec: int = 4, n_win: int = 60, seed: int = 0, false_alarm: bool = False) -> pd.DataFrame:
    """OOF rows of `n_rec` recordings, one 60 s seizure each at windows 20-31; predictions track it by `quality`."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_rec):
        for i in range(n_win):
            sz = 1.0 if 20 <= i < 32 else 0.0
            p = float(np.clip(quality * sz + (1 - quality) * rng.random() * 0.5 + rng.normal(0, 0.03), 0.01, 0.99))
            if false_alarm and 45 <= i < 50:
                p = 0.9
            rows.append({"sample_id": f"r{r}_{i * STRIDE_S}", "recording_id": f"r{r}", "group": f"p{r}", "fold": r % 2,
                         "start_s": i * STRIDE_S, "duration_s": WINDOW_S, "n_votes": 1,
                         "background_vote": 1 - sz, "seizure_vote": sz, "background_pred": 1 - p, "seizure_pred": p})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- registry


def test_registry_names_and_unknown_task() -> None:
    assert task_names() == ["hms", "seizure"]
    assert get_task("hms").classes == tuple(HMS) and get_task("seizure").classes == ("background", "seizure")
    with pytest.raises(ConfigError, match=r"unknown task 'tuh'.*hms, seizure"):
        get_task("tuh")


def test_task_for_asks_the_dataset_adapter_and_checks_classes() -> None:
    assert task_for("chbmit").name == "seizure" and task_for("hms").name == "hms"
    assert task_for(DataConfig(name="x", dataset="chbmit"), classes=["background", "seizure"]).name == "seizure"
    assert task_for("hms", classes=HMS).name == "hms"
    with pytest.raises(ValueError, match="do not match task 'hms'"):
        task_for("hms", classes=["background", "seizure"])
    with pytest.raises(ConfigError, match="unknown dataset 'tuh'"):
        task_for("tuh")
    assert task_from_classes(["seizure", "background"]).name == "seizure"
    with pytest.raises(ConfigError, match="no task has the classes"):
        task_from_classes(["a", "b", "c"])


def test_columns() -> None:
    t = get_task("seizure")
    assert t.vote_cols() == ["background_vote", "seizure_vote"] and t.pred_cols() == ["background_pred", "seizure_pred"]
    with pytest.raises(ValueError, match="do not match task 'seizure'"):
        t.check_classes(HMS, "cache x")


# --------------------------------------------------------------------------- hms


def test_hms_scores_equal_the_kl_scorer_and_are_strict_json() -> None:
    df = hms_oof()
    task = get_task("hms")
    s = task.score_oof(df)
    ref = kl_score_oof(df)
    assert s["kl"] == ref["kl"] and s["kl_min_votes"] == ref["kl_min_votes"]
    assert s["folds"]["2"]["kl"] == ref["fold2_kl"]
    assert task.metric == "kl" and task.direction == "min"
    # no row with n_votes >= 10: undefined → None, and strict JSON still parses
    low = task.score_oof(hms_oof(high_votes=False))
    assert low["kl_min_votes"] is None and low["folds"]["0"]["kl_min_votes"] is None
    assert strict_loads(json.dumps(low, allow_nan=False))["kl_min_votes"] is None
    ep = task.epoch_scores(df[df.fold == 0])
    assert ep["kl"] == pytest.approx(ref["fold0_kl"])
    lines = "\n".join(task.report_lines(s))
    assert "kl_min_votes" in lines and "fold1_kl" in lines


def test_hms_direction_lower_is_better() -> None:
    task = get_task("hms")
    assert task.is_better({"kl": 0.5}, {"kl": 0.6}) and not task.is_better({"kl": 0.6}, {"kl": 0.5})
    assert task.is_better({"kl": 0.9}, None)
    assert not task.is_better({"kl": None}, None) and not task.is_better({"kl": float("nan")}, {"kl": 3.0})
    t = hms_oof()
    targets, probs = t[[f"{c}_vote" for c in HMS]].to_numpy(), t[[f"{c}_pred" for c in HMS]].to_numpy()
    assert task.fit_loss(targets, probs) == kl_score(targets, probs)


# --------------------------------------------------------------------------- seizure


def test_seizure_scores_at_the_chosen_threshold() -> None:
    df = seizure_oof(quality=0.9)
    task = get_task("seizure")
    s = task.score_oof(df)
    ref = seizure_scores(df.drop(columns="fold"), find_best=True)
    assert s["threshold"] == ref["best_threshold"]
    assert s["event_f1"] == pytest.approx(ref["best_event"]["f1"])
    assert s["event_sensitivity"] == pytest.approx(ref["best_event"]["sensitivity"])
    assert s["fp_per_24h"] == pytest.approx(ref["best_event"]["fp_per_24h"])
    assert s["auroc"] == pytest.approx(ref["auroc"]) and s["auroc"] > 0.95
    assert s["event_f1"] == pytest.approx(1.0) and s["n_rows"] == len(df)
    assert set(s["folds"]) == {"0", "1"} and s["folds"]["0"]["threshold"] == s["threshold"]
    strict_loads(json.dumps(s, allow_nan=False))
    # a fixed threshold is used as given
    fixed = get_task("seizure", threshold=0.95).score_oof(df)
    assert fixed["threshold"] == 0.95 and fixed["event_f1"] <= s["event_f1"]


def test_seizure_undefined_metrics_are_none() -> None:
    df = seizure_oof(quality=0.9)
    df["seizure_vote"], df["background_vote"] = 0.0, 1.0  # no seizure at all: AUROC and sensitivity undefined
    s = get_task("seizure").score_oof(df)
    assert s["auroc"] is None and s["event_sensitivity"] is None
    strict_loads(json.dumps(s, allow_nan=False))


def test_seizure_direction_and_auroc_tiebreak() -> None:
    task = get_task("seizure")
    assert task.direction == "max"
    assert task.is_better({"event_f1": 0.8, "auroc": 0.5}, {"event_f1": 0.7, "auroc": 0.99})
    assert task.is_better({"event_f1": 0.8, "auroc": 0.9}, {"event_f1": 0.8, "auroc": 0.85})
    assert not task.is_better({"event_f1": 0.8, "auroc": 0.85}, {"event_f1": 0.8, "auroc": 0.9})
    assert not task.is_better({"event_f1": None, "auroc": 0.99}, {"event_f1": 0.1, "auroc": 0.5})
    keys = sorted([{"event_f1": 0.5}, {"event_f1": None}, {"event_f1": 0.9}], key=task.rank_key)
    assert [k["event_f1"] for k in keys] == [0.9, 0.5, None]


def test_seizure_fit_loss_is_binary_log_loss() -> None:
    df = seizure_oof(quality=0.7)
    task = get_task("seizure")
    t, p = df[task.vote_cols()].to_numpy(), df[task.pred_cols()].to_numpy()
    y, q = t[:, 1], p[:, 1]
    assert task.fit_loss(t, p) == pytest.approx(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    better = df.assign(seizure_pred=0.9 * df.seizure_vote + 0.05, background_pred=0.95 - 0.9 * df.seizure_vote)
    assert task.fit_loss(t, better[task.pred_cols()].to_numpy()) < task.fit_loss(t, p)


def test_headlines_speak_the_task() -> None:
    sz = get_task("seizure").headline({"event_f1": 0.5, "auroc": 0.9, "fp_per_24h": None})
    assert sz.startswith("event F1 0.5000, AUROC 0.9000") and "FP/24h n/a" in sz and "KL" not in sz and "nan" not in sz
    assert get_task("hms").headline({"kl": 0.81234, "kl_min_votes": None}) == "KL 0.8123, KL (n_votes >= 10) n/a"


def test_report_lines_name_the_seizure_metrics() -> None:
    task = get_task("seizure")
    text = "\n".join(task.report_lines(task.score_oof(seizure_oof(quality=0.8, false_alarm=True))))
    for k in ("event_f1", "auroc", "event_sensitivity", "event_precision", "fp_per_24h", "threshold"):
        assert k in text, k
    assert "kl" not in text.split()


def test_json_safe() -> None:
    out = json_safe({"a": np.float32(1.5), "b": [float("nan"), np.int64(3)], "c": {"d": float("inf")}, "e": np.bool_(True)})
    assert out == {"a": 1.5, "b": [None, 3], "c": {"d": None}, "e": True}
    assert not any(isinstance(v, float) and math.isnan(v) for v in out["b"] if v is not None)


# --------------------------------------------------------------------------- `python -m hbac score`


def _printed(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def test_score_command_hms_prints_kl(tmp_path, capsys) -> None:
    from hbac.cli import main

    df = hms_oof()
    df.to_csv(tmp_path / "oof.csv", index=False)
    assert main(["score", str(tmp_path / "oof.csv")]) == 0
    got = _printed(capsys.readouterr().out)
    ref = kl_score_oof(df)
    assert got["task"].startswith("hms (KL divergence, lower is better)")
    assert float(got["kl"]) == pytest.approx(ref["kl"], abs=1e-5)
    assert float(got["kl_min_votes"]) == pytest.approx(ref["kl_min_votes"], abs=1e-5)
    assert float(got["fold2_kl"]) == pytest.approx(ref["fold2_kl"], abs=1e-5) and got["n_rows"] == str(len(df))
    assert main(["score", str(tmp_path / "oof.csv"), "--min-votes", "100"]) == 0
    assert _printed(capsys.readouterr().out)["kl_min_votes"] == "n/a"


def test_score_command_seizure_prints_event_metrics(tmp_path, capsys) -> None:
    from hbac.cli import main

    seizure_oof(quality=0.8, false_alarm=True).to_csv(tmp_path / "oof.csv", index=False)
    assert main(["score", str(tmp_path / "oof.csv")]) == 0
    got = _printed(capsys.readouterr().out)
    assert got["task"].startswith("seizure (event F1, higher is better)")
    for k in ("event_f1", "auroc", "event_sensitivity", "event_precision", "fp_per_24h", "threshold", "fold0_event_f1"):
        assert k in got, k
    assert "kl" not in got and "kl_min_votes" not in got
    assert main(["score", str(tmp_path / "oof.csv"), "--threshold", "0.9"]) == 0
    assert float(_printed(capsys.readouterr().out)["threshold"]) == 0.9


def test_score_command_errors_name_the_file(tmp_path, capsys) -> None:
    from hbac.cli import main

    assert main(["score", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err
    bad = hms_oof().drop(columns="lpd_pred")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert main(["score", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "lpd_pred" in err


def test_event_class_and_the_datasets_that_have_events() -> None:
    from hbac.tasks import event_datasets

    assert get_task("seizure").event_class == "seizure" and get_task("hms").event_class is None
    names = event_datasets()
    assert {"chbmit", "bids", "tusz"} <= set(names) and "hms" not in names


def test_old_scores_files_are_converted_by_their_task() -> None:
    from hbac.tasks import task_of_scores

    task, s, note = task_of_scores({"task": "chbmit", "cv": 0.05, "seizure": {"auroc": 0.9, "best_threshold": 0.4,
                                                                           "best_event": {"f1": 0.55}}})
    assert task.name == "seizure" and s["cv"] == 0.55 and s["dataset"] == "chbmit" and s["threshold"] == 0.4 and note == ""
    task, s, note = task_of_scores({"task": "hms", "cv": 0.8})  # current layout
    assert task.name == "hms" and s["dataset"] == "hms"
    task, s, _ = task_of_scores({"task": "my_kl_dataset", "cv": 0.7})  # before tasks, KL for every dataset
    assert task.name == "hms" and s["task"] == "hms" and s["dataset"] == "my_kl_dataset"
    task, _, note = task_of_scores({"task": "x", "metric": "dice"})
    assert task is None and "unknown task 'x'" in note
    _, _, note = task_of_scores({"task": "chbmit", "seizure": {"auroc": 0.9}})
    assert "re-score" in note
