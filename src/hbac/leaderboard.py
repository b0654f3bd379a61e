"""The local CV leaderboard: every `outputs/*/scores.json` (experiments and ensembles), best first.

Nothing is hidden: experiments with missing folds are listed and marked with `*`, and a
folder whose `scores.json` cannot be read is listed with the reason in `note`.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from hbac.engine.provenance import folder_hash, mixed_folds
from hbac.io import atomic_write_csv, atomic_write_text
from hbac.tasks import get_task, task_names, task_of_scores

log = logging.getLogger(__name__)

INCOMPLETE = "*"

# every metric column a registered task reports beside its primary one (`cv`), in registry order
METRIC_COLUMNS: list[str] = list(dict.fromkeys(
    k for name in task_names() for k in (*get_task(name).secondary, *(t for t, _ in get_task(name).tiebreak))
))
SHORT = {"kl_min_votes": "cv>=10", "event_sensitivity": "sens", "event_precision": "prec", "fp_per_24h": "fp/24h",
         "threshold": "thr"}  # compact display headers of metric keys

COLUMNS = [
    "rank", "name", "kind", "task", "dataset", "metric", "direction", "cv", *METRIC_COLUMNS, "fold_std", "n_folds_done",
    "missing_folds", "model", "backbone", "inputs", "n_params", "train_time", "date", "complete", "note",
]


# --------------------------------------------------------------------------- formatting helpers


def human_time(seconds: Optional[float]) -> str:
    """Seconds → '45s', '3m12s', '2h05m'; '' when unknown."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def human_count(n: Any) -> str:
    """Parameter count → '850', '12.3k', '4.0M'; '' when unknown or zero."""
    if n is None or isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n <= 0:
        return ""
    if n < 1e3:
        return f"{int(n)}"
    if n < 1e6:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.1f}M"


def _float(v: Any) -> float:
    """A JSON number → float; anything else → NaN."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return float("nan")
    return float(v)


def _date(created: Any) -> str:
    """ISO timestamp → 'YYYY-MM-DD HH:MM' (as written, in its own time zone)."""
    if not isinstance(created, str) or not created:
        return ""
    try:
        return pd.Timestamp(created).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return created


def _inputs(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "+".join(str(x) for x in v)
    return "" if v is None else str(v)


# --------------------------------------------------------------------------- rows


def _kind(folder: Path, scores: dict[str, Any]) -> str:
    return "ensemble" if scores.get("model") == "ensemble" or (folder / "weights.json").exists() else "experiment"


def _row(folder: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """One leaderboard row from a parsed scores.json."""
    task, scores, note = task_of_scores(raw)  # older layouts converted by their task
    folds = scores.get("folds") or {}
    if not isinstance(folds, dict):
        raise ValueError(f"'folds' is a {type(folds).__name__}, expected a mapping")
    metric = task.metric if task else str(scores.get("metric") or "")
    fold_vals = np.array([_float(v.get(metric)) if isinstance(v, dict) else float("nan") for v in folds.values()])
    fold_vals = fold_vals[np.isfinite(fold_vals)]
    missing = scores.get("missing_folds") or []
    if not isinstance(missing, list):
        missing = [missing]
    cv = _float(scores.get("cv")) if task else float("nan")
    notes = [note] if note else []
    if task and not math.isfinite(cv):
        notes.append("no cv in scores.json")
    mixed, stale = None, False
    if scores.get("model") != "ensemble":
        try:
            mixed = mixed_folds(folder)
            stale = bool(scores.get("config_hash")) and folder_hash(folder) not in (None, scores["config_hash"])
        except (OSError, ValueError) as e:  # an unreadable config.yaml: say so, keep the row
            notes.append(f"config.yaml unreadable: {e}")
    if mixed:
        notes.append("mixed configs: " + mixed.split(": ", 1)[-1])
    elif stale:
        mixed = "stale scores.json"
        notes.append("mixed configs: scores.json is from another config than config.yaml (stale)")
    if missing:
        notes.append(f"incomplete: fold{'s' if len(missing) > 1 else ''} {','.join(str(m) for m in missing)} missing")
    row: dict[str, Any] = {
        "name": folder.name,
        "kind": _kind(folder, scores),
        "task": task.name if task else str(scores.get("task") or "?"),
        "dataset": str(scores.get("dataset") or "?"),
        "metric": metric,
        "direction": task.direction if task else "",
        "cv": cv,
        **{k: _float(scores.get(k, scores.get("cv_min_votes") if k == "kl_min_votes" else None)) for k in METRIC_COLUMNS},
        "fold_std": float(np.std(fold_vals, ddof=1)) if len(fold_vals) >= 2 else float("nan"),
        "n_folds_done": len(folds),
        "missing_folds": ",".join(str(m) for m in missing),
        "model": str(scores.get("model") or ""),
        "backbone": str(scores.get("backbone") or ""),
        "inputs": _inputs(scores.get("inputs")),
        "n_params": int(_float(scores.get("n_params"))) if math.isfinite(_float(scores.get("n_params"))) else None,
        "train_time": human_time(scores.get("train_time_s")),
        "date": _date(scores.get("created")),
        "complete": not missing and not mixed,
        "note": "; ".join(notes),
        "_n_rows": _float(scores.get("n_rows")),
    }
    return row


def _broken_row(folder: Path, reason: str) -> dict[str, Any]:
    """A row for a folder whose scores cannot be read, so it is listed rather than skipped."""
    return {
        "name": folder.name, "kind": "ensemble" if (folder / "weights.json").exists() else "experiment",
        "task": "?", "dataset": "?", "metric": "", "direction": "", "cv": float("nan"),
        **{c: float("nan") for c in METRIC_COLUMNS}, "fold_std": float("nan"), "n_folds_done": 0, "missing_folds": "",
        "model": "", "backbone": "", "inputs": "", "n_params": None, "train_time": "", "date": "", "complete": False,
        "note": reason,
    }


def _looks_like_run(folder: Path) -> bool:
    """An experiment/ensemble folder without scores.json yet (training under way, nothing finished)."""
    return (folder / "config.yaml").exists() or any(folder.glob("fold*/"))


def _flag_other_rows(df: pd.DataFrame) -> None:
    """Note entries scored on another number of rows than most of their task: their CV is not comparable."""
    if "_n_rows" not in df:
        return
    for task, sub in df.groupby("task"):
        n = sub["_n_rows"].dropna()
        if n.nunique() <= 1:
            continue
        common = n.mode().iloc[0]
        for i in n.index[n != common]:
            note = f"scored on {int(n[i])} rows, most {task} entries on {int(common)}: not comparable"
            df.loc[i, "note"] = "; ".join(x for x in (df.loc[i, "note"], note) if x)


def build_leaderboard(outputs_root: Path) -> pd.DataFrame:
    """One row per `outputs_root/*/scores.json` (columns `COLUMNS`), grouped by (task, dataset), best first by
    each task's primary metric in its direction (then its tie-breaks); unscored folders last."""
    outputs_root = Path(outputs_root)
    rows: list[dict[str, Any]] = []
    folders = sorted(p for p in outputs_root.iterdir() if p.is_dir() and not p.name.startswith(".")) if outputs_root.is_dir() else []
    for folder in folders:
        path = folder / "scores.json"
        if not path.exists():
            if _looks_like_run(folder):
                rows.append(_broken_row(folder, "no scores.json yet (no fold finished)"))
            continue
        try:
            scores = json.loads(path.read_text())
            if not isinstance(scores, dict):
                raise ValueError(f"top level is a {type(scores).__name__}, expected an object")
            rows.append(_row(folder, scores))
        except (OSError, ValueError, AttributeError, TypeError) as e:
            log.warning("%s: unreadable (%s); listed with an error note", path, e)
            rows.append(_broken_row(folder, f"error: {path.name} unreadable: {e}"))
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.DataFrame(rows)
    _flag_other_rows(df)
    return _rank(df)[COLUMNS]


def _rank(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by group (task, dataset), then each task's rank key (primary metric in its direction, then
    its tie-breaks), unscored rows last; rank 1.. within each group."""
    order = {t: i for i, t in enumerate(task_names())}
    keys = []
    for _, r in df.iterrows():
        scored = r["task"] in order and math.isfinite(r["cv"])
        rk = get_task(r["task"]).rank_key({r["metric"]: r["cv"], **r.to_dict()}) if scored else (math.inf,)
        keys.append((0 if scored else 1, order.get(r["task"], len(order)), r["task"], r["dataset"], rk, r["name"]))
    df = df.iloc[sorted(range(len(df)), key=lambda i: keys[i])].reset_index(drop=True)
    ranked = np.array([k[0] == 0 for k in sorted(keys)])
    df["rank"] = pd.array([None] * len(df), dtype="Int64")
    if ranked.any():
        df.loc[ranked, "rank"] = df[ranked].groupby(["task", "dataset"]).cumcount().to_numpy() + 1
    return df


# --------------------------------------------------------------------------- rendering


def _f(v: Any, digits: int) -> str:
    return "" if v is None or pd.isna(v) else f"{v:.{digits}f}"


def _display_frame(df: pd.DataFrame, task: str, dataset: str) -> pd.DataFrame:
    """Human-readable string table of one (task, dataset) group (incomplete names marked with '*'):
    `cv` is the task's primary metric, then its other metrics."""
    sub = df[(df["task"] == task) & (df["dataset"] == dataset)]
    t = get_task(task)
    out = pd.DataFrame({
        "rank": ["" if pd.isna(r) else str(int(r)) for r in sub["rank"]],
        "name": [n + ("" if c else INCOMPLETE) for n, c in zip(sub["name"], sub["complete"])],
        "kind": sub["kind"].tolist(),
        "cv": [_f(v, 4) for v in sub["cv"]],
    })
    for k in (*t.secondary, *(k for k, _ in t.tiebreak if k not in t.secondary)):
        out[SHORT.get(k, k)] = [_f(v, 2 if k == "fp_per_24h" else 4 if k.startswith("kl") else 3) for v in sub[k]]
    out["fold_std"] = [_f(v, 4) for v in sub["fold_std"]]
    out["folds"] = [str(n) for n in sub["n_folds_done"]]
    for c in ("model", "backbone", "inputs"):
        out[c] = sub[c].tolist()
    out["params"] = [human_count(v) for v in sub["n_params"]]
    out["time"] = sub["train_time"].tolist()
    out["date"] = sub["date"].tolist()
    return out


def _groups(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(task, dataset) groups in leaderboard order."""
    return list(dict.fromkeys(zip(df["task"], df["dataset"])))


def text_table(disp: pd.DataFrame) -> str:
    """Plain-text aligned table: text columns left-aligned, numbers right-aligned."""
    cols = list(disp.columns)
    cells = [[str(v) for v in disp[c]] for c in cols]
    widths = [max([len(c)] + [len(v) for v in col]) for c, col in zip(cols, cells)]
    left = {"name", "kind", "model", "backbone", "inputs", "date", "note"}
    just = lambda s, w, c: s.ljust(w) if c in left else s.rjust(w)  # noqa: E731
    lines = ["  ".join(just(c, w, c) for c, w in zip(cols, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for i in range(len(disp)):
        lines.append("  ".join(just(cells[j][i], widths[j], c) for j, (c, w) in enumerate(zip(cols, widths))).rstrip())
    return "\n".join(lines)


def markdown_table(disp: pd.DataFrame, links: Optional[dict[str, str]] = None) -> str:
    """GitHub-flavoured markdown table of a display frame; `links` {name: href} turn those names into links."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    links = links or {}

    def cell(col: str, v: Any) -> str:
        href = links.get(str(v).rstrip(INCOMPLETE)) if col == "name" else None
        return f"[{esc(v)}]({href})" if href else esc(v)

    lines = ["| " + " | ".join(esc(c) for c in disp.columns) + " |", "|" + "|".join("---" for _ in disp.columns) + "|"]
    for _, r in disp.iterrows():
        lines.append("| " + " | ".join(cell(c, v) for c, v in r.items()) + " |")
    return "\n".join(lines)


def report_links(outputs_root: Path, names: Any) -> dict[str, str]:
    """{name: '<name>/report.html'} for every entry whose report exists (`python -m hbac report NAME`)."""
    return {str(n): f"{n}/report.html" for n in names if (Path(outputs_root) / str(n) / "report.html").exists()}


def render(df: pd.DataFrame, fmt: str = "text", links: Optional[dict[str, str]] = None) -> str:
    """The whole leaderboard, one section per task then the unscored folders, as 'text' or 'markdown' (names linked via `links`)."""
    if df.empty:
        return "No experiments yet.\n"
    md = fmt == "markdown"
    parts = ["# Local CV leaderboard", ""] if md else []
    scored = df[df["rank"].notna()]
    for task, dataset in _groups(scored):
        title = get_task(task).title(dataset)
        disp = _display_frame(scored, task, dataset)
        parts += [f"## {title}", "", markdown_table(disp, links), ""] if md else [title, text_table(disp), ""]
    unscored = df[df["rank"].isna()]
    if len(unscored):
        title = "Not scored (listed so nothing is hidden)"
        disp = unscored[["name", "kind", "note"]]
        parts += [f"## {title}", "", markdown_table(disp), ""] if md else [title, text_table(disp), ""]
    for n, m, c, note in zip(scored["name"], scored["missing_folds"], scored["complete"], scored["note"]):
        lines = [f"incomplete, fold{'s' if ',' in m else ''} {m} missing"] if m else []
        lines += [x for x in str(note or "").split("; ") if x and not x.startswith("incomplete")]  # mixed configs, not comparable …
        mark = "" if c else (f"`{INCOMPLETE}` " if md else f"{INCOMPLETE} ")
        parts += [f"{mark}{n}: {x}" + ("  " if md else "") for x in lines]
    return "\n".join(parts).rstrip() + "\n"


# --------------------------------------------------------------------------- entry points


def _write(outputs_root: Path, df: pd.DataFrame) -> None:
    atomic_write_csv(outputs_root / "leaderboard.csv", df)
    atomic_write_text(outputs_root / "leaderboard.md", render(df, "markdown", report_links(outputs_root, df["name"])))


def write_leaderboard(outputs_root: Path) -> pd.DataFrame:
    """Build the leaderboard and write `outputs_root/leaderboard.csv` and `leaderboard.md` (atomically)."""
    outputs_root = Path(outputs_root)
    df = build_leaderboard(outputs_root)
    _write(outputs_root, df)
    return df


def print_leaderboard(outputs_root: Path) -> pd.DataFrame:
    """Build, write and print the leaderboard; a friendly hint when nothing has been trained yet."""
    outputs_root = Path(outputs_root)
    df = build_leaderboard(outputs_root)
    if df.empty:
        print(f"No experiments in {outputs_root}/ yet: train one with `python -m hbac train CONFIG` "
              f"(e.g. configs/hms_effnet_b0_kaggle_eeg.yaml), then run `python -m hbac leaderboard` again.")
        return df
    _write(outputs_root, df)
    print(render(df, "text"), end="")
    print(f"\nwritten: {outputs_root / 'leaderboard.csv'}, {outputs_root / 'leaderboard.md'}")
    return df
