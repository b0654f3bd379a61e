"""TUH EEG Seizure Corpus (TUSZ v2) in its native layout.

Layout: `[edf/]{train,dev,eval}/<subject>/s<NNN>_<YYYY>[_MM_DD]/<NN>_tcp_{ar,le,ar_a,le_a}/<subject>_s<NNN>_t<NNN>.edf`
with, beside each EDF, term-based annotations `.csv_bi` (one `TERM` channel, labels `bckg`/`seiz`)
and event-based `.csv` (one row per montage channel, labels `bckg` or a seizure type `fnsz`,
`gnsz`, `cpsz`, `tcsz`, …). Both are comma-separated with `#` header comment lines (`# version =
csv_v1.0.0`, `# bname = …`, `# duration = 1750.00 secs`, `# montage_file = …`) before the
`channel,start_time,stop_time,label,confidence` header. Seizures are read from `.csv_bi`, else
from the union over channels of the `.csv` seizure rows.

Signals are referential, `EEG FP1-REF` (`_ar`) or `EEG FP1-LE` (`_le`), at rates that vary
between files (250, 256, 400, 512, 1000 Hz); the TCP montage (`eeg.montage: tcp`, 22 pairs, needs
A1/A2, absent from the `_a` montages) or the 18-pair double banana (`chbmit_banana`) is formed by
electrode name, and the cache resamples every file to `eeg.fs` (required).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import pandas as pd

from hbac.datasets import register
from hbac.datasets.edf import read_edf
from hbac.datasets.edf_montage import EDFMontageAdapter, recording_windows
from hbac.errors import ConfigError, DataError

if TYPE_CHECKING:  # only for hints: hbac.config imports this package to validate `dataset:`
    from hbac.config import DataConfig

log = logging.getLogger(__name__)

CSV_COLUMNS = ["channel", "start_time", "stop_time", "label", "confidence"]
BACKGROUND_LABELS = {"bckg", "null", ""}
SPLITS = ("train", "dev", "eval")
_RE_DURATION = re.compile(r"^#\s*duration\s*=\s*([0-9.eE+-]+)\s*(?:secs?|s)?\s*$", re.I)
_RE_STEM = re.compile(r"^([a-z0-9]+)_(s\d+)_(t\d+)$", re.I)


# --------------------------------------------------------------------------- annotations


@dataclass
class TermAnnotation:
    """One TUSZ annotation file: seizure intervals (s, merged over channels), the header's duration (s)."""

    seizures: list[tuple[float, float]]
    duration_s: Optional[float]
    labels: list[str]  # seizure labels seen (lower case), e.g. ['fnsz']


def _union(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted union of intervals (touching ones joined)."""
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(float(s), float(e)) for s, e in out]


def parse_annotation(path: str | Path) -> TermAnnotation:
    """A `.csv_bi` or `.csv` file → seizures (union over channels), header duration and seizure labels.

    Rows whose label is not background are seizures. Raises DataError naming the file and the
    row for a missing column, a non-numeric time or a stop before its start.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    duration = None
    body: list[tuple[int, str]] = []
    for k, line in enumerate(lines, start=1):
        s = line.strip()
        if s.startswith("#"):
            m = _RE_DURATION.match(s)
            if m:
                duration = float(m.group(1))
        elif s:
            body.append((k, s))
    if not body:
        raise DataError(f"{path}: no column header line ({', '.join(CSV_COLUMNS)})")
    header = [c.strip().lower() for c in body[0][1].split(",")]
    missing = [c for c in ("start_time", "stop_time", "label") if c not in header]
    if missing:
        raise DataError(f"{path}: line {body[0][0]}: missing column(s) {missing} (header {header})")
    col = {c: header.index(c) for c in header}
    seizures, labels = [], set()
    for k, line in body[1:]:
        f = [v.strip() for v in line.split(",")]
        if len(f) < len(header):
            raise DataError(f"{path}: line {k}: {len(f)} fields, expected {len(header)}: {line!r}")
        label = f[col["label"]].lower()
        try:
            start, stop = float(f[col["start_time"]]), float(f[col["stop_time"]])
        except ValueError:
            raise DataError(f"{path}: line {k}: start/stop time is not a number: {line!r}") from None
        if stop < start:
            raise DataError(f"{path}: line {k}: stop_time {stop} before start_time {start}")
        if label not in BACKGROUND_LABELS:
            seizures.append((start, stop))
            labels.add(label)
    return TermAnnotation(_union(seizures), duration, sorted(labels))


def annotation_path(edf: Path) -> Optional[Path]:
    """The `.csv_bi` beside an EDF, else its `.csv`, else None."""
    for ext in (".csv_bi", ".csv"):
        p = edf.with_suffix(ext)
        if p.exists():
            return p
    return None


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class TUSZFile:
    """One EDF of the corpus: its id (the file stem), subject, split and montage folder."""

    recording_id: str
    subject: str
    split: str
    montage: str
    edf: Path


def find_files(data_dir: str | Path, subjects: Optional[Sequence[str]] = None) -> list[TUSZFile]:
    """Every `<subject>_sNNN_tNNN.edf` under `data_dir` (or `data_dir/edf`), in path order."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"TUSZ data folder not found: {root}")
    out, seen = [], {}
    for p in sorted(root.rglob("*.edf")):
        m = _RE_STEM.match(p.stem)
        if not m:
            continue
        rel = p.relative_to(root).parts
        split = next((s for s in rel if s in SPLITS), "")
        if p.stem in seen:
            raise DataError(f"{root}: recording {p.stem} appears twice ({seen[p.stem]} and {p}); keep one montage folder")
        seen[p.stem] = p
        if subjects and m.group(1) not in subjects:
            continue
        out.append(TUSZFile(p.stem, m.group(1), split, p.parent.name, p))
    return out


def build_table(cfg: DataConfig) -> pd.DataFrame:
    """Windows of every EDF labelled from its annotations; a file without annotations is skipped (warned)."""
    w = cfg.options.windows
    parts = []
    t_subject: dict[str, float] = {}
    files = find_files(cfg.data_dir, cfg.options.patients)
    for f in files:
        ann_path = annotation_path(f.edf)
        if ann_path is None:
            log.warning("%s: no .csv_bi or .csv annotation; skipped", f.edf)
            continue
        ann = parse_annotation(ann_path)
        try:
            duration = read_edf(f.edf).duration_s
        except DataError as e:
            if ann.duration_s is None:
                log.warning("%s: unreadable header (%s) and no '# duration' in %s; skipped", f.edf, e, ann_path.name)
                continue
            duration = ann.duration_s
        start = t_subject.get(f.subject, 0.0)
        t_subject[f.subject] = start + duration
        seizures = [(s, min(e, duration)) for s, e in ann.seizures if s < duration]
        parts.append(recording_windows(f.recording_id, f.subject, duration, seizures, w.window_s, w.stride_s, w.label,
                                       w.hard_min_overlap, start).assign(tusz_split=f.split))
    if not parts:
        raise DataError(f"{cfg.data_dir}: no TUSZ recordings (<subject>_sNNN_tNNN.edf with .csv_bi/.csv)")
    table = pd.concat(parts, ignore_index=True)
    log.info("TUSZ table: %d windows from %d files of %d subject(s); %d windows touch a seizure", len(table),
             table.recording_id.nunique(), table.group.nunique(), int((table.seizure_overlap > 0).sum()))
    return table


# --------------------------------------------------------------------------- adapter


def _need_fs(cfg: DataConfig) -> None:
    if cfg.eeg.fs is None:
        raise ConfigError(f"data {cfg.name!r}: eeg.fs must be set for TUSZ (its files have different sampling rates)")


class TUSZAdapter(EDFMontageAdapter):
    """TUSZ: EDF + `.csv_bi`/`.csv` per file, referential channels → bipolar montage; the seizure task.

    Signals at the file's native rate (`EDFMontageAdapter`); the cache resamples to `eeg.fs` (required)."""

    name = "tusz"
    synthetic = "hbac.datasets.synthetic.tusz:synth"
    fs = 256.0

    def table(self, cfg: DataConfig) -> pd.DataFrame:
        """Windows of every file (subjects: `cfg.options.patients`); group = subject; `tusz_split` = train/dev/eval."""
        _need_fs(cfg)
        return build_table(cfg)

    def _files(self, cfg: DataConfig) -> dict[str, Path]:
        key = str(Path(cfg.data_dir).resolve())
        if key not in _PATHS:
            _PATHS[key] = {f.recording_id: f.edf for f in find_files(cfg.data_dir)}
        return _PATHS[key]

    def path(self, cfg: DataConfig, recording_id: Any) -> Path:
        """The EDF of a recording id (found by walking `data_dir` once per process); FileNotFoundError if unknown."""
        p = self._files(cfg).get(str(recording_id))
        if p is None:
            raise FileNotFoundError(f"TUSZ recording {recording_id!r} not found under {cfg.data_dir}")
        return p


_PATHS: dict[str, dict[str, Path]] = {}  # data_dir → {recording id: EDF path}
ADAPTER = register(TUSZAdapter())
