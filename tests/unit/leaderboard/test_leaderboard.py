"""The local CV leaderboard: ordering, incomplete and broken entries, written files, CLI."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbac.cli import main
from hbac.engine.outputs import score_table, write_scores as write_scores_json
from hbac.leaderboard import build_leaderboard, human_time, render, write_leaderboard
from hbac.tasks import get_task
from hbac.tasks.kl import kl_score


def write_scores(root: Path, name: str, cv: float, task: str = "hms", missing=(), folds=None, **extra) -> None:
    """outputs/<name>/scores.json shaped like hbac.train.collect_oof's."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    folds = folds if folds is not None else [cv - 0.02, cv + 0.01, cv + 0.03, cv - 0.01, cv]
    metric = extra.pop("metric", "kl")
    s = {
        "task": task, "metric": metric, "cv": cv, "cv_min_votes": cv - 0.1, "n_rows": 100,
        "folds": {str(k): {metric: v, "kl_min_votes": v - 0.1} for k, v in enumerate(folds) if k not in missing},
        "missing_folds": list(missing), "model": "2d", "backbone": "efficientnet_b0",
        "inputs": ["kaggle_spec", "eeg_spec"], "n_params": 4_000_000, "train_time_s": 192.0,
        "created": "2024-03-01T10:20:30+00:00", **extra,
    }
    (d / "scores.json").write_text(json.dumps(s))


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    write_scores(root, "exp_a", 0.80)
    write_scores(root, "exp_b", 0.60)
    write_scores(root, "exp_inc", 0.50, missing=(2, 3))
    write_scores(root, "ens", 0.55, model="ensemble", backbone="-", inputs=["exp_a", "exp_b"])
    (root / "ens" / "weights.json").write_text("{}")
    seizure = dict(task="seizure", dataset="chbmit", metric="event_f1", direction="max")
    write_scores(root, "chb_x", 0.64, **seizure, event_sensitivity=0.9, event_precision=0.5, fp_per_24h=3.25, auroc=0.97,
                 folds=[0.6, 0.7])
    write_scores(root, "chb_y", 0.50, **seizure, folds=[0.5, 0.5])  # no secondary metrics: tolerated
    # written before tasks existed: "task" was the dataset, cv was KL; event F1 from the seizure section
    write_scores(root, "chb_old", 0.05, task="chbmit",
                 seizure={"auroc": 0.9, "best_threshold": 0.4, "best_event": {"f1": 0.55, "sensitivity": 0.6}})
    (root / "broken").mkdir()
    (root / "broken" / "scores.json").write_text("{not json")
    (root / "detect").mkdir()  # not an experiment: ignored
    return root


def test_order_best_first_each_task_in_its_direction(outputs):
    df = build_leaderboard(outputs)
    hms = df[df.task == "hms"]
    assert hms["name"].tolist() == ["exp_inc", "ens", "exp_b", "exp_a"]  # KL: lower first
    assert hms["rank"].tolist() == [1, 2, 3, 4]
    sz = df[df.task == "seizure"]
    assert sz["name"].tolist() == ["chb_x", "chb_old", "chb_y"]  # event F1: higher first
    assert sz["rank"].tolist() == [1, 2, 3] and set(sz["dataset"]) == {"chbmit"} and set(sz["metric"]) == {"event_f1"}
    assert df.set_index("name").loc["chb_old", "cv"] == 0.55
    tasks = df["task"].tolist()
    assert tasks.index("seizure") > max(i for i, t in enumerate(tasks) if t == "hms")
    assert "detect" not in df["name"].tolist()
    row = df.set_index("name").loc["ens"]
    assert row["kind"] == "ensemble" and df.set_index("name").loc["exp_a", "kind"] == "experiment"


def test_columns_values(outputs):
    df = build_leaderboard(outputs).set_index("name")
    a = df.loc["exp_a"]
    assert a["cv"] == pytest.approx(0.80) and a["kl_min_votes"] == pytest.approx(0.70)
    assert a["fold_std"] == pytest.approx(statistics.stdev([0.78, 0.81, 0.83, 0.79, 0.80]))
    assert a["n_folds_done"] == 5 and a["missing_folds"] == ""
    assert a["train_time"] == "3m12s" and a["date"] == "2024-03-01 10:20"
    assert a["n_params"] == 4_000_000 and a["backbone"] == "efficientnet_b0"
    x = df.loc["chb_x"]
    assert (x["event_sensitivity"], x["event_precision"], x["cv"], x["fp_per_24h"], x["auroc"]) == (0.9, 0.5, 0.64, 3.25, 0.97)
    assert x["fold_std"] == pytest.approx(statistics.stdev([0.6, 0.7]))  # of the fold event F1s
    assert pd.isna(df.loc["chb_y", "auroc"])


def test_incomplete_marked_not_hidden_and_broken_listed(outputs):
    df = build_leaderboard(outputs).set_index("name")
    inc = df.loc["exp_inc"]
    assert inc["missing_folds"] == "2,3" and inc["n_folds_done"] == 3 and not inc["complete"]
    assert "2,3 missing" in inc["note"]
    assert "broken" in df.index
    assert df.loc["broken", "note"].startswith("error") and pd.isna(df.loc["broken", "rank"])
    assert df.index[-1] == "broken"  # unranked rows go last


def test_files_written(outputs):
    df = write_leaderboard(outputs)
    csv = pd.read_csv(outputs / "leaderboard.csv")
    assert csv["name"].tolist() == df["name"].tolist()
    md = (outputs / "leaderboard.md").read_text()
    assert "| rank |" in md and "| exp_inc* |" in md and "exp_inc: incomplete, folds 2,3 missing" in md
    assert md.index("| exp_b |") < md.index("| exp_a |") < md.index("| chb_x |") < md.index("| chb_y |") < md.index("| broken |")
    assert "## hms (KL divergence, lower is better)" in md and "## chbmit: seizure (event F1, higher is better)" in md
    assert not list(outputs.glob(".*.tmp"))


def test_cli_prints_table(outputs, capsys):
    assert main(["leaderboard", "--outputs", str(outputs)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(l for l in lines if l.lstrip().startswith("rank"))
    assert "cv" in header and "name" in header
    rows = {l.split()[1]: i for i, l in enumerate(lines) if len(l.split()) > 2 and l.split()[0].isdigit()}
    order = [rows[n] for n in ("exp_inc*", "ens", "exp_b", "exp_a", "chb_x", "chb_old", "chb_y")]
    assert order == sorted(order)
    assert "0.6000" in out and "3m12s" in out and "4.0M" in out
    assert "* exp_inc: incomplete, folds 2,3 missing" in out
    assert any(l.startswith("broken") and "error" in l for l in lines)
    assert "leaderboard.csv" in out and (outputs / "leaderboard.md").exists()
    # aligned columns: the 'cv' values end where the 'cv' header ends
    sep = lines[lines.index(header) + 1]
    assert set(sep.replace(" ", "")) == {"-"}
    end = header.index(" cv ") + 3
    assert lines[rows["exp_b"]][end - 6:end] == "0.6000"


def test_cli_empty_outputs_is_friendly(tmp_path, capsys):
    assert main(["leaderboard", "--outputs", str(tmp_path / "nothing")]) == 0
    out = capsys.readouterr().out
    assert "python -m hbac train CONFIG" in out
    assert not (tmp_path / "nothing").exists()


def test_human_time():
    assert human_time(45) == "45s" and human_time(192) == "3m12s" and human_time(7500) == "2h05m" and human_time(None) == ""


def test_entries_scored_on_other_rows_are_flagged(tmp_path):
    root = tmp_path / "outputs"
    write_scores(root, "a", 0.8)
    write_scores(root, "b", 0.7)
    write_scores(root, "few", 0.4, n_rows=40)  # e.g. validated on one row per EEG: a lower CV that means nothing
    df = build_leaderboard(root).set_index("name")
    assert "scored on 40 rows, most hms entries on 100: not comparable" in df.loc["few", "note"]
    assert df.loc["a", "note"] == "" and df.loc["b", "note"] == ""


# --------------------------------------------------------------------------- seizure experiments from real OOF files

WINDOWS, SZ = 120, range(20, 32)  # windows of 10 s every 5 s; one seizure per recording (100-165 s)


def seizure_oof(sz_prob: float, bg_prob: float, false_alarms: tuple[int, ...] = (), fa_prob: float = 0.6) -> pd.DataFrame:
    """Two folds × two recordings: P(seizure) is `sz_prob` in the seizure, `bg_prob` elsewhere, `fa_prob` at `false_alarms`."""
    rows = []
    for r in range(4):
        for i in range(WINDOWS):
            y = 1.0 if i in SZ else 0.0
            p = sz_prob if i in SZ else (fa_prob if i in false_alarms else bg_prob)
            rows.append({"sample_id": f"r{r}_{i * 5.0}", "recording_id": f"r{r}", "group": f"p{r}", "start_s": i * 5.0,
                         "duration_s": 10.0, "fold": r % 2, "n_votes": 1, "background_vote": 1 - y, "seizure_vote": y,
                         "background_pred": 1 - p, "seizure_pred": p})
    return pd.DataFrame(rows)


def write_seizure_experiment(root: Path, name: str, oof: pd.DataFrame) -> dict:
    """outputs/<name>/oof.csv and the scores.json the trainer writes for it (the seizure task scoring it)."""
    out = root / name
    out.mkdir(parents=True)
    oof.to_csv(out / "oof.csv", index=False)
    scores = score_table(get_task("seizure"), oof, "chbmit")
    scores.update(missing_folds=[], model="1d", backbone="1d", inputs=["eeg"], n_params=1000, train_time_s=10.0,
                  created="2024-03-01T10:20:30+00:00")
    return write_scores_json(out, scores)


def test_seizure_experiments_ranked_by_event_f1_not_kl(tmp_path):
    root = tmp_path / "outputs"
    # sharp events, but a high background probability: perfect event F1, poor KL
    sharp = seizure_oof(sz_prob=0.99, bg_prob=0.4)
    # calibrated background, a timid seizure response and false alarms: better KL, worse event F1
    timid = seizure_oof(sz_prob=0.4, bg_prob=0.05, false_alarms=(90, 91, 92, 100, 101, 102))
    t = get_task("seizure")
    kl = {n: kl_score(o[t.vote_cols()].to_numpy(), o[t.pred_cols()].to_numpy()) for n, o in (("sharp", sharp), ("timid", timid))}
    assert kl["timid"] < kl["sharp"]  # KL would rank timid first
    s_sharp = write_seizure_experiment(root, "sharp", sharp)
    s_timid = write_seizure_experiment(root, "timid", timid)
    assert s_sharp["event_f1"] == 1.0 and s_timid["event_f1"] < 0.9
    assert s_sharp["cv"] == s_sharp["event_f1"] and s_sharp["metric"] == "event_f1" and s_sharp["direction"] == "max"
    df = build_leaderboard(root)
    assert df["name"].tolist() == ["sharp", "timid"] and df["rank"].tolist() == [1, 2]
    assert set(df["task"]) == {"seizure"} and set(df["dataset"]) == {"chbmit"}
    text = render(df)
    assert "chbmit: seizure (event F1, higher is better)" in text and "KL" not in text
    for h in ("auroc", "sens", "prec", "fp/24h"):
        assert h in text, h


def test_seizure_ties_broken_by_auroc(tmp_path):
    root = tmp_path / "outputs"
    good = seizure_oof(sz_prob=0.9, bg_prob=0.1)
    noisy = good.copy()
    noisy.loc[noisy.index % 7 == 0, "seizure_pred"] = 0.45  # below every chosen threshold: same events, lower AUROC
    noisy["background_pred"] = 1 - noisy["seizure_pred"]
    a, b = write_seizure_experiment(root, "noisy", noisy), write_seizure_experiment(root, "good", good)
    assert a["event_f1"] == b["event_f1"] and a["auroc"] < b["auroc"]
    assert build_leaderboard(root)["name"].tolist() == ["good", "noisy"]


def test_scores_json_is_strict(tmp_path):
    """A seizure table without any seizure leaves AUROC undefined: written as null, parsed by a strict parser."""
    oof = seizure_oof(sz_prob=0.2, bg_prob=0.1).assign(seizure_vote=0.0, background_vote=1.0)
    write_seizure_experiment(tmp_path, "none", oof)

    def refuse(c):
        raise ValueError(c)
    s = json.loads((tmp_path / "none" / "scores.json").read_text(), parse_constant=refuse)
    assert s["auroc"] is None and s["task"] == "seizure"
    assert np.isnan(build_leaderboard(tmp_path).loc[0, "auroc"])


def test_best_entry_defaults_ask_the_task(tmp_path: Path) -> None:
    """submit's default is the best entry of its task; detect's is the best entry of a task with events."""
    from hbac.inference.detect import best_event_entry
    from hbac.inference.predict import resolve_members

    write_scores(tmp_path, "exp_hms", 0.8)
    with pytest.raises(FileNotFoundError, match="task with events .*chbmit"):
        best_event_entry(tmp_path)
    with pytest.raises(ValueError, match="the task whose best entry"):
        resolve_members(tmp_path)
    assert resolve_members(tmp_path, task="hms") == {"exp_hms": 1.0}
    with pytest.raises(FileNotFoundError, match="no complete seizure experiment"):
        resolve_members(tmp_path, task="seizure")
