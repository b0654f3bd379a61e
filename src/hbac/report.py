"""`python -m hbac report NAME`: one self-contained report.html per experiment or ensemble.

Everything is in the one file (images as base64 PNG `data:` URIs, no scripts, no external
links): the config, overall and per-fold scores, ensemble weights, learning curves, the
summary figures of the OOF predictions (hbac.explain.figures), the figures of
`python -m hbac explain` when they exist, and for seizure tasks the per-recording probability
timelines and the event table.
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from hbac.explain.figures import is_seizure, summary_figures
from hbac.io import atomic_write_text, read_json
from hbac.plotting import subplots
from hbac.tasks.events import detect_events, true_events
from hbac.tasks.kl import oof_classes

log = logging.getLogger(__name__)

MAX_TIMELINES = 12  # recordings drawn in the seizure timeline figure
CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:.85em}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%;border:1px solid #eee}"""


def png_data_uri(png: bytes) -> str:
    """PNG bytes → `data:image/png;base64,…`."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def fig_png(fig: Any, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def img_tag(png: bytes, caption: str) -> str:
    return f'<figure><img src="{png_data_uri(png)}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def table_html(df: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    """A small DataFrame as an HTML table, floats formatted, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for v in r:
            s = floatfmt.format(v) if isinstance(v, (float, np.floating)) and np.isfinite(v) else ("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
            cells.append(f"<td>{html.escape(s)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def scores_section(scores: dict[str, Any]) -> str:
    """Overall CV and the per-fold table of scores.json; the seizure metrics when present."""
    top = {k: v for k, v in scores.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    parts = ["<h2>Scores</h2>", table_html(pd.DataFrame({"key": list(top), "value": list(top.values())}))]
    folds = scores.get("folds")
    if isinstance(folds, dict) and folds:
        rows = [{"fold": k, **{kk: vv for kk, vv in v.items() if isinstance(vv, (int, float, str))}} for k, v in folds.items() if isinstance(v, dict)]
        parts += ["<h3>Per fold</h3>", table_html(pd.DataFrame(rows))]
    seizure = scores.get("seizure")
    if isinstance(seizure, dict):
        flat = {k: v for k, v in seizure.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        parts += ["<h3>Seizure detection (OOF)</h3>", table_html(pd.DataFrame({"metric": list(flat), "value": list(flat.values())}))]
    return "\n".join(parts)


def curves_section(entry: Path) -> str:
    """Learning curves: each fold's curve.png, or one drawn from its history.csv."""
    parts = []
    for d in sorted(entry.glob("fold*"), key=lambda p: (len(p.name), p.name)):
        png = d / "curve.png"
        if png.exists():
            parts.append(img_tag(png.read_bytes(), f"{d.name}: learning curve"))
        elif (d / "history.csv").exists():
            h = pd.read_csv(d / "history.csv")
            fig, ax = subplots(figsize=(7, 4))
            for col in ("train_loss", "val_kl", "val_kl_min_votes"):
                if col in h:
                    ax.plot(h.get("epoch", np.arange(len(h)) + 1), h[col], "o-", label=col)
            ax.legend()
            ax.set_xlabel("epoch")
            parts.append(img_tag(fig_png(fig), f"{d.name}: learning curve (history.csv)"))
    return "<h2>Learning curves</h2>" + ("\n".join(parts) or "<p>No fold has a curve.png or history.csv.</p>")


def seizure_section(oof: pd.DataFrame, threshold: float) -> str:
    """Per-recording seizure probability timelines (true seizures shaded) and the event table at `threshold`."""
    if not {"recording_id", "start_s", "seizure_pred", "seizure_vote"} <= set(oof.columns):
        return ""
    w = float(oof["duration_s"].iloc[0]) if "duration_s" in oof else 10.0
    rows, recs = [], []
    for rec, g in oof.sort_values(["recording_id", "start_s"]).groupby("recording_id", sort=True):
        s, p = g["start_s"].to_numpy(float), g["seizure_pred"].to_numpy(float)
        truth = true_events(s, w, g["seizure_vote"].to_numpy(), g["seizure_overlap"].to_numpy() if "seizure_overlap" in g else None)
        pred = detect_events(p, s, w, threshold)
        rows += [{"recording": rec, "kind": "true seizure", "start_s": a, "end_s": b, "peak_prob": np.nan} for a, b in truth]
        rows += [{"recording": rec, "kind": "detected", "start_s": a, "end_s": b, "peak_prob": pk} for a, b, pk in pred]
        recs.append((rec, s, p, truth, pred))
    recs = sorted(recs, key=lambda r: -len(r[3]))[:MAX_TIMELINES]  # recordings with seizures first
    fig, axes = subplots(len(recs), 1, figsize=(12, 1.3 * len(recs) + 0.8), squeeze=False, sharey=True)
    for ax, (rec, s, p, truth, pred) in zip(axes[:, 0], recs):
        ax.plot(s + w / 2, p, lw=0.8, color="tab:blue")
        for a, b in truth:
            ax.axvspan(a, b, color="tab:red", alpha=0.25, lw=0)
        for a, b, _ in pred:
            ax.axvspan(a, b, ymin=0.9, ymax=1.0, color="tab:orange", lw=0)
        ax.axhline(threshold, color="grey", ls="--", lw=0.6)
        ax.set_ylabel(str(rec), fontsize=7, rotation=0, ha="right")
        ax.set_ylim(0, 1)
    axes[-1, 0].set_xlabel("time in recording (s); red: true seizure, orange bar: detected event, dashed: threshold")
    fig.tight_layout()
    table = pd.DataFrame(rows, columns=["recording", "kind", "start_s", "end_s", "peak_prob"])
    return ("<h2>Seizure timelines and events</h2>" + img_tag(fig_png(fig), f"OOF seizure probability per recording (threshold {threshold:.2f})")
            + "<h3>Event table</h3>" + table_html(table, "{:.2f}"))


def explain_section(entry: Path) -> str:
    """The figures of `python -m hbac explain` (explain/*.png), with the numbers of explain.json."""
    d = entry / "explain"
    pngs = sorted(d.glob("*.png")) if d.is_dir() else []
    if not pngs:
        return f"<h2>Explanations</h2><p>None yet: run <code>python -m hbac explain {html.escape(entry.name)}</code>.</p>"
    parts = ["<h2>Explanations</h2>"]
    if (d / "explain.json").exists():
        js = read_json(d / "explain.json")
        keep = {k: js[k] for k in ("fold", "rows", "n_rows", "oof_check_max_abs_diff", "actmax") if k in js}
        parts.append(f"<pre>{html.escape(json.dumps(keep, indent=1, default=str))}</pre>")
    order = ("summary", "gradcam", "optimal", "actmax", "deconv", "importance")
    pngs.sort(key=lambda p: (next((i for i, o in enumerate(order) if p.name.startswith(o)), len(order)), p.name))
    parts += [img_tag(p.read_bytes(), p.stem.replace("_", " ")) for p in pngs if not p.name.startswith("summary_")]
    return "\n".join(parts)


def build_report(entry: Path) -> str:
    """The report of an experiment or ensemble folder as one HTML string."""
    entry = Path(entry)
    if not entry.is_dir():
        raise FileNotFoundError(f"experiment or ensemble folder not found: {entry}")
    scores = read_json(entry / "scores.json") if (entry / "scores.json").exists() else {}
    kind = "ensemble" if (entry / "weights.json").exists() else "experiment"
    parts = [f"<h1>{html.escape(entry.name)} ({kind})</h1>",
             f"<p>Report written {datetime.now(timezone.utc).isoformat(timespec='seconds')}; task {html.escape(str(scores.get('task', '?')))}.</p>"]
    parts.append(scores_section(scores) if scores else "<h2>Scores</h2><p>No scores.json yet.</p>")
    if kind == "ensemble":
        w = read_json(entry / "weights.json").get("weights", {})
        parts += ["<h2>Blend weights</h2>", table_html(pd.DataFrame({"member": list(w), "weight": list(w.values())}))]
    oof_path = entry / "oof.csv"
    if oof_path.exists():
        oof = pd.read_csv(oof_path)
        classes = oof_classes(oof)
        parts.append("<h2>OOF summary figures</h2>")
        parts += [img_tag(fig_png(fig), name.replace("_", " ")) for name, fig in summary_figures(oof, classes).items()]
        if is_seizure(classes):
            thr = (scores.get("seizure") or {}).get("best_threshold", 0.5)
            parts.append(seizure_section(oof, float(thr)))
    if kind == "experiment":
        parts.append(curves_section(entry))
    parts.append(explain_section(entry))
    cfg = entry / "config.yaml"
    if cfg.exists():
        parts += ["<h2>Config</h2>", f"<pre>{html.escape(cfg.read_text())}</pre>"]
    body = "\n".join(parts)
    return f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(entry.name)} report</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n"


def write_report(entry: Path, out: Optional[Path] = None) -> Path:
    """Write `<entry>/report.html` (or `out`) atomically; returns its path."""
    path = Path(out) if out is not None else Path(entry) / "report.html"
    atomic_write_text(path, build_report(Path(entry)))
    log.info("report: %s", path)
    return path
