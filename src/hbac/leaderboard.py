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

from hbac.io import atomic_write_csv, atomic_write_text

log = logging.getLogger(__name__)

TASK_ORDER = {"hms": 0, "chbmit": 1}
TASK_TITLES = {"hms": "HMS (KL divergence, lower is better)", "chbmit": "CHB-MIT (KL divergence, lower is better)"}
INCOMPLETE = "*"

# Seizure metric columns → keys accepted in scores["seizure"] (first present wins).
SEIZURE_KEYS: dict[str, tuple[str, ...]] = {
    "sensitivity": ("event_sensitivity", "sensitivity", "sens"),
    "precision": ("event_precision", "precision", "ppv"),
    "f1": ("event_f1", "f1"),
    "fp_per_24h": ("fp_per_24h", "false_alarms_per_24h", "fa_per_24h", "fp24h"),
    "auroc": ("auroc", "window_auroc", "roc_auc", "auc"),
}

COLUMNS = [
    "rank", "name", "kind", "task", "cv", "cv_min_votes", "fold_std", "n_folds_done", "missing_folds",
    "model", "backbone", "inputs", "n_params", "train_time", "date",
    *SEIZURE_KEYS, "complete", "note",
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


def _row(folder: Path, scores: dict[str, Any]) -> dict[str, Any]:
    """One leaderboard row from a parsed scores.json."""
    folds = scores.get("folds") or {}
    if not isinstance(folds, dict):
        raise ValueError(f"'folds' is a {type(folds).__name__}, expected a mapping")
    fold_kl = np.array([_float(v.get("kl")) if isinstance(v, dict) else float("nan") for v in folds.values()])
    fold_kl = fold_kl[np.isfinite(fold_kl)]
    missing = scores.get("missing_folds") or []
    if not isinstance(missing, list):
        missing = [missing]
    cv = _float(scores.get("cv"))
    notes = []
    if not math.isfinite(cv):
        notes.append("no cv in scores.json")
    if missing:
        notes.append(f"incomplete: fold{'s' if len(missing) > 1 else ''} {','.join(str(m) for m in missing)} missing")
    row: dict[str, Any] = {
        "name": folder.name,
        "kind": _kind(folder, scores),
        "task": str(scores.get("task") or "?"),
        "cv": cv,
        "cv_min_votes": _float(scores.get("cv_min_votes")),
        "fold_std": float(np.std(fold_kl, ddof=1)) if len(fold_kl) >= 2 else float("nan"),
        "n_folds_done": len(folds),
        "missing_folds": ",".join(str(m) for m in missing),
        "model": str(scores.get("model") or ""),
        "backbone": str(scores.get("backbone") or ""),
        "inputs": _inputs(scores.get("inputs")),
        "n_params": int(_float(scores.get("n_params"))) if math.isfinite(_float(scores.get("n_params"))) else None,
        "train_time": human_time(scores.get("train_time_s")),
        "date": _date(scores.get("created")),
        "complete": not missing,
        "note": "; ".join(notes),
    }
    seizure = scores.get("seizure")
    for col, keys in SEIZURE_KEYS.items():
        val = float("nan")
        if isinstance(seizure, dict):
            for k in keys:
                if k in seizure:
                    val = _float(seizure[k])
                    break
        row[col] = val
    return row


def _broken_row(folder: Path, reason: str) -> dict[str, Any]:
    """A row for a folder whose scores cannot be read, so it is listed rather than skipped."""
    return {
        "name": folder.name, "kind": "ensemble" if (folder / "weights.json").exists() else "experiment",
        "task": "?", "cv": float("nan"), "cv_min_votes": float("nan"), "fold_std": float("nan"),
        "n_folds_done": 0, "missing_folds": "", "model": "", "backbone": "", "inputs": "", "n_params": None,
        "train_time": "", "date": "", **{c: float("nan") for c in SEIZURE_KEYS}, "complete": False, "note": reason,
    }


def _looks_like_run(folder: Path) -> bool:
    """An experiment/ensemble folder without scores.json yet (training under way, nothing finished)."""
    return (folder / "config.yaml").exists() or any(folder.glob("fold*/"))


def build_leaderboard(outputs_root: Path) -> pd.DataFrame:
    """One row per `outputs_root/*/scores.json` (columns `COLUMNS`), best CV first within each task, HMS first."""
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
    df["_task"] = df["task"].map(TASK_ORDER).fillna(len(TASK_ORDER))
    df["_nocv"] = ~np.isfinite(df["cv"].to_numpy(np.float64))
    df = df.sort_values(["_task", "task", "_nocv", "cv", "name"], kind="stable").reset_index(drop=True)
    ranked = ~df["_nocv"]
    df["rank"] = pd.array([None] * len(df), dtype="Int64")
    df.loc[ranked, "rank"] = df[ranked].groupby("task").cumcount().to_numpy() + 1
    return df[COLUMNS]


# --------------------------------------------------------------------------- rendering


def _display_frame(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """Human-readable string table for one task's rows (incomplete names marked with '*')."""
    sub = df[df["task"] == task]
    f4 = lambda v: "" if v is None or pd.isna(v) else f"{v:.4f}"  # noqa: E731
    f3 = lambda v: "" if v is None or pd.isna(v) else f"{v:.3f}"  # noqa: E731
    f2 = lambda v: "" if v is None or pd.isna(v) else f"{v:.2f}"  # noqa: E731
    out = pd.DataFrame({
        "rank": ["" if pd.isna(r) else str(int(r)) for r in sub["rank"]],
        "name": [n + (INCOMPLETE if m else "") for n, m in zip(sub["name"], sub["missing_folds"])],
        "kind": sub["kind"].tolist(),
        "cv": [f4(v) for v in sub["cv"]],
        "cv>=10": [f4(v) for v in sub["cv_min_votes"]],
        "fold_std": [f4(v) for v in sub["fold_std"]],
        "folds": [str(n) for n in sub["n_folds_done"]],
        "model": sub["model"].tolist(),
        "backbone": sub["backbone"].tolist(),
        "inputs": sub["inputs"].tolist(),
        "params": [human_count(v) for v in sub["n_params"]],
        "time": sub["train_time"].tolist(),
        "date": sub["date"].tolist(),
    })
    if task == "chbmit" or sub[list(SEIZURE_KEYS)].notna().any().any():
        out["sens"] = [f3(v) for v in sub["sensitivity"]]
        out["prec"] = [f3(v) for v in sub["precision"]]
        out["f1"] = [f3(v) for v in sub["f1"]]
        out["fp/24h"] = [f2(v) for v in sub["fp_per_24h"]]
        out["auroc"] = [f3(v) for v in sub["auroc"]]
    return out


def _tasks(df: pd.DataFrame) -> list[str]:
    return sorted(df["task"].unique(), key=lambda t: (TASK_ORDER.get(t, len(TASK_ORDER)), t))


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
    scored = df[np.isfinite(df["cv"].to_numpy(np.float64))]
    for task in _tasks(scored) if len(scored) else []:
        title = TASK_TITLES.get(task, f"task '{task}' (KL divergence, lower is better)")
        disp = _display_frame(scored, task)
        parts += [f"## {title}", "", markdown_table(disp, links), ""] if md else [title, text_table(disp), ""]
    unscored = df[~np.isfinite(df["cv"].to_numpy(np.float64))]
    if len(unscored):
        title = "Not scored (listed so nothing is hidden)"
        disp = unscored[["name", "kind", "note"]]
        parts += [f"## {title}", "", markdown_table(disp), ""] if md else [title, text_table(disp), ""]
    for n, m in zip(df["name"], df["missing_folds"]):
        if m:
            note = f"{n}: incomplete, fold{'s' if ',' in m else ''} {m} missing"
            parts.append(f"`{INCOMPLETE}` {note}  " if md else f"{INCOMPLETE} {note}")
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
