"""BIDS EEG seizure datasets as SzCORE distributes them (CHB-MIT-BIDS, Siena, TUSZ-BIDS, SeizeIT, …).

Layout: `sub-<id>/[ses-<id>/]eeg/sub-<id>[_ses-<id>]_task-<task>[_run-<id>]_eeg.edf`, each with a
`…_events.tsv` beside it in the SzCORE (HED-SCORE) annotation format: tab-separated columns
`onset, duration, eventType, confidence, channels, dateTime, recordingDuration`, one row per
event; `eventType` is `bckg` or a seizure type `sz`, `sz_foc_ia`, `sz_gen_m_tonicClonic`, … (any
value starting with `sz` is a seizure); a recording without seizures has one `bckg` row spanning
it. Signals are the 19 electrodes of the 10-20 system in a referential montage (SzCORE writes
`Fp1-Avg`, … against the common average); they are converted to the configured bipolar montage by
electrode name. `detect` writes its events in the same format (`hbac.tasks.events.write_events_tsv`,
the format's one writer; the reader is here).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import pandas as pd

from hbac.datasets import register
from hbac.datasets.edf import read_edf
from hbac.datasets.edf_montage import EDFMontageAdapter, recording_windows
from hbac.errors import DataError
from hbac.tasks.events import NA

if TYPE_CHECKING:  # only for hints: hbac.config imports this package to validate `dataset:`
    from hbac.config import DataConfig

log = logging.getLogger(__name__)

# the 19 electrodes of SzCORE's referential layout (old 10-20 names, as in its BIDS conversions)
BIDS_ELECTRODES = ["Fp1", "F3", "C3", "P3", "O1", "F7", "T3", "T5", "Fz", "Cz", "Pz",
                   "Fp2", "F4", "C4", "P4", "O2", "F8", "T4", "T6"]
_RE_NAME = re.compile(r"^(sub-[A-Za-z0-9]+)(?:_(ses-[A-Za-z0-9]+))?(?:_[a-z]+-[A-Za-z0-9]+)*$")


# --------------------------------------------------------------------------- events.tsv


def is_seizure(event_type: str) -> bool:
    """True for SzCORE seizure event types (`sz`, `sz_foc_ia`, …), False for `bckg` and anything else."""
    return str(event_type).strip().lower().startswith("sz")


def _number(value: Any, path: Path, row: int, column: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: row {row + 1}, column {column!r}: {value!r} is not a number") from None
    if not np.isfinite(x):
        raise DataError(f"{path}: row {row + 1}, column {column!r}: {value!r} is not a finite number")
    return x


def parse_events_tsv(path: str | Path) -> tuple[list[tuple[float, float]], Optional[float]]:
    """An SzCORE `events.tsv` → (seizures [(start_s, end_s)] sorted, recordingDuration in s or None)."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a tab-separated events file ({e})") from None
    missing = [c for c in ("onset", "duration", "eventType") if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} (has {list(df.columns)})")
    seizures = []
    for i, row in enumerate(df.itertuples(index=False)):
        d = row._asdict()
        if not is_seizure(d["eventType"]):
            continue
        onset, dur = _number(d["onset"], path, i, "onset"), _number(d["duration"], path, i, "duration")
        if dur < 0 or onset < 0:
            raise DataError(f"{path}: row {i + 1}: negative onset or duration ({onset}, {dur})")
        seizures.append((onset, onset + dur))
    duration = None
    if "recordingDuration" in df.columns and len(df) and df["recordingDuration"].iloc[0] not in ("", NA):
        duration = _number(df["recordingDuration"].iloc[0], path, 0, "recordingDuration")
    return sorted(seizures), duration


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class BIDSRecording:
    """One `_eeg.edf` file: its id (file name without `_eeg.edf`), subject, session and files."""

    recording_id: str
    subject: str
    session: str
    edf: Path
    events: Path


def parse_name(recording_id: str) -> tuple[str, str]:
    """'sub-01_ses-01_task-szMonitoring_run-00' → ('sub-01', 'ses-01'); session '' when absent."""
    m = _RE_NAME.match(recording_id)
    if not m:
        raise DataError(f"not a BIDS recording name: {recording_id!r} (expected sub-<id>[_ses-<id>]_task-<task>…)")
    return m.group(1), m.group(2) or ""


def bids_path(data_dir: str | Path, recording_id: str) -> Path:
    """The `_eeg.edf` of a recording id under a BIDS root."""
    sub, ses = parse_name(recording_id)
    folder = Path(data_dir) / sub / ses / "eeg" if ses else Path(data_dir) / sub / "eeg"
    return folder / f"{recording_id}_eeg.edf"


def find_recordings(data_dir: str | Path, subjects: Optional[Sequence[str]] = None) -> list[BIDSRecording]:
    """Every `_eeg.edf` under a BIDS root (optionally of some subjects, 'sub-01' or '01'), in name order."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"BIDS data folder not found: {root}")
    files = sorted(set(root.glob("sub-*/ses-*/eeg/*_eeg.edf")) | set(root.glob("sub-*/eeg/*_eeg.edf")))
    want = {s if str(s).startswith("sub-") else f"sub-{s}" for s in subjects} if subjects else None
    out = []
    for f in files:
        rid = f.name[: -len("_eeg.edf")]
        sub, ses = parse_name(rid)
        if want is None or sub in want:
            out.append(BIDSRecording(rid, sub, ses, f, f.with_name(f"{rid}_events.tsv")))
    if want is not None and not want <= {r.subject for r in out}:
        raise DataError(f"{root}: subject(s) {sorted(want - {r.subject for r in out})} not found")
    return out


def _duration(rec: BIDSRecording, tsv_duration: Optional[float]) -> Optional[float]:
    """Recording length: the EDF header, else the events file's recordingDuration; None when neither is readable."""
    try:
        return read_edf(rec.edf).duration_s
    except DataError as e:
        log.warning("%s: unreadable header (%s)", rec.edf, e)
        return tsv_duration


def build_table(cfg: DataConfig) -> pd.DataFrame:
    """Windows of every recording labelled from its events.tsv (a missing events file: seizure-free, warned)."""
    w = cfg.options.windows
    parts = []
    t_subject: dict[str, float] = {}
    for rec in find_recordings(cfg.data_dir, cfg.options.patients):
        if rec.events.exists():
            seizures, tsv_dur = parse_events_tsv(rec.events)
        else:
            log.warning("%s: no events file %s; assumed seizure-free", rec.edf, rec.events.name)
            seizures, tsv_dur = [], None
        duration = _duration(rec, tsv_dur)
        if duration is None:
            log.warning("%s: no length from its header or events file; skipped", rec.edf)
            continue
        start = t_subject.get(rec.subject, 0.0)  # runs of a subject in name order, back to back
        t_subject[rec.subject] = start + duration
        parts.append(recording_windows(rec.recording_id, rec.subject, duration,
                                       [(s, min(e, duration)) for s, e in seizures if s < duration],
                                       w.window_s, w.stride_s, w.label, w.hard_min_overlap, start))
    if not parts:
        raise DataError(f"{cfg.data_dir}: no BIDS recordings (sub-*/[ses-*/]eeg/*_eeg.edf)")
    table = pd.concat(parts, ignore_index=True)
    log.info("BIDS table: %d windows from %d recordings of %d subject(s); %d windows touch a seizure", len(table),
             table.recording_id.nunique(), table.group.nunique(), int((table.seizure_overlap > 0).sum()))
    return table


# --------------------------------------------------------------------------- adapter


class BIDSAdapter(EDFMontageAdapter):
    """SzCORE BIDS: `_eeg.edf` + `_events.tsv` per recording, cut into fixed windows; the seizure task.

    Signals: the referential electrodes → `cfg.eeg.montage` by name (`EDFMontageAdapter`)."""

    name = "bids"
    synthetic = "hbac.datasets.synthetic.bids:synth"
    fs = 256.0

    def table(self, cfg: DataConfig) -> pd.DataFrame:
        """Windows of every recording (subjects: `cfg.options.patients`, default all); group = subject; rec_start_s:
        the subject's runs back to back in name order."""
        return build_table(cfg)

    def path(self, cfg: DataConfig, recording_id: Any) -> Path:
        """`data_dir/sub-X/[ses-Y/]eeg/<recording_id>_eeg.edf`."""
        return bids_path(cfg.data_dir, str(recording_id))


ADAPTER = register(BIDSAdapter())
