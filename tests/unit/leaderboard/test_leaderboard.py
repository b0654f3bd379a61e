"""The local CV leaderboard: ordering, incomplete and broken entries, written files, CLI."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

from hbac.cli import main
from hbac.leaderboard import build_leaderboard, human_time, write_leaderboard


def write_scores(root: Path, name: str, cv: float, task: str = "hms", missing=(), folds=None, **extra) -> None:
    """outputs/<name>/scores.json shaped like hbac.train.collect_oof's."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    folds = folds if folds is not None else [cv - 0.02, cv + 0.01, cv + 0.03, cv - 0.01, cv]
    s = {
        "task": task, "metric": "kl", "cv": cv, "cv_min_votes": cv - 0.1, "n_rows": 100,
        "folds": {str(k): {"kl": v, "kl_min_votes": v - 0.1} for k, v in enumerate(folds) if k not in missing},
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
    write_scores(root, "chb_x", 0.20, task="chbmit",
                 seizure={"event_sensitivity": 0.9, "event_precision": 0.5, "event_f1": 0.64, "fp_per_24h": 3.25, "auroc": 0.97})
    write_scores(root, "chb_y", 0.10, task="chbmit")  # no seizure metrics: tolerated
    (root / "broken").mkdir()
    (root / "broken" / "scores.json").write_text("{not json")
    (root / "detect").mkdir()  # not an experiment: ignored
    return root


def test_order_best_first_hms_then_chbmit(outputs):
    df = build_leaderboard(outputs)
    hms = df[df.task == "hms"]
    assert hms["name"].tolist() == ["exp_inc", "ens", "exp_b", "exp_a"]
    assert hms["rank"].tolist() == [1, 2, 3, 4]
    assert df[df.task == "chbmit"]["name"].tolist() == ["chb_y", "chb_x"]
    assert df[df.task == "chbmit"]["rank"].tolist() == [1, 2]
    tasks = df["task"].tolist()
    assert tasks.index("chbmit") > max(i for i, t in enumerate(tasks) if t == "hms")
    assert "detect" not in df["name"].tolist()
    row = df.set_index("name").loc["ens"]
    assert row["kind"] == "ensemble" and df.set_index("name").loc["exp_a", "kind"] == "experiment"


def test_columns_values(outputs):
    df = build_leaderboard(outputs).set_index("name")
    a = df.loc["exp_a"]
    assert a["cv"] == pytest.approx(0.80) and a["cv_min_votes"] == pytest.approx(0.70)
    assert a["fold_std"] == pytest.approx(statistics.stdev([0.78, 0.81, 0.83, 0.79, 0.80]))
    assert a["n_folds_done"] == 5 and a["missing_folds"] == ""
    assert a["train_time"] == "3m12s" and a["date"] == "2024-03-01 10:20"
    assert a["n_params"] == 4_000_000 and a["backbone"] == "efficientnet_b0"
    x = df.loc["chb_x"]
    assert (x["sensitivity"], x["precision"], x["f1"], x["fp_per_24h"], x["auroc"]) == (0.9, 0.5, 0.64, 3.25, 0.97)
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
    assert md.index("| exp_b |") < md.index("| exp_a |") < md.index("| chb_y |") < md.index("| broken |")
    assert not list(outputs.glob(".*.tmp"))


def test_cli_prints_table(outputs, capsys):
    assert main(["leaderboard", "--outputs", str(outputs)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(l for l in lines if l.lstrip().startswith("rank"))
    assert "cv" in header and "name" in header
    rows = {l.split()[1]: i for i, l in enumerate(lines) if len(l.split()) > 2 and l.split()[0].isdigit()}
    order = [rows[n] for n in ("exp_inc*", "ens", "exp_b", "exp_a", "chb_y", "chb_x")]
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
