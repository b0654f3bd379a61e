"""CHB-MIT adapter: summaries + EDF files → the common sample table and montage reader.

Real layout (PhysioNet `chbmit/1.0.0`): `data_dir/chbNN/chbNN_MM.edf` and
`data_dir/chbNN/chbNN-summary.txt` (a summary at `data_dir/chbNN-summary.txt` is
accepted too). Each EDF file is cut into windows of `cfg.options.windows.window_s` seconds
every `cfg.options.windows.stride_s` seconds; the label is the fraction of the window inside
a seizure (`soft`), or 1/0 by `hard_min_overlap` (`hard`). Classes are
`["background", "seizure"]`.

Signals are read by `EDFMontageAdapter` (`hbac.datasets.edf_montage`): channels picked by name
into the configured bipolar montage (default the 18-pair CHB-MIT double banana).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import pandas as pd

from hbac.datasets import register
from hbac.datasets.edf import read_edf
from hbac.datasets.edf_montage import EDFMontageAdapter, recording_windows
from hbac.errors import DataError

if TYPE_CHECKING:
    from hbac.config import DataConfig

log = logging.getLogger(__name__)

CHBMIT_FS = 256.0
DAY_S = 86400.0

# --------------------------------------------------------------------------- summaries


@dataclass
class SummaryFile:
    """One `File Name:` entry of a `chbNN-summary.txt`.

    Times are seconds since midnight of the day the summary's first file starts, with
    day rollovers applied (None where the summary gives no times, e.g. chb24).
    Seizures are (start_s, end_s) seconds from the start of this file.
    """

    file_name: str
    start_time: Optional[float]
    end_time: Optional[float]
    n_seizures: int
    seizures: list[tuple[float, float]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    start_clock: str = ""  # as written, e.g. "13:43:04"
    end_clock: str = ""  # as written, e.g. "24:44:29"
    line: int = 0  # line of `File Name:` in the summary, for messages

    @property
    def recording_id(self) -> str:
        """File name without `.edf`, e.g. 'chb01_03'."""
        return re.sub(r"\.edf$", "", self.file_name, flags=re.I)

    @property
    def duration_s(self) -> Optional[float]:
        """File length from the summary times in seconds (None without times)."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


_RE_FILE = re.compile(r"^File\s+Name:\s*(\S+)\s*$", re.I)
_RE_TIME = re.compile(r"^File\s+(Start|End)\s+Time:\s*(\d+):(\d{1,2}):(\d{1,2})\s*$", re.I)
_RE_NSZ = re.compile(r"^Number\s+of\s+Seizures\s+in\s+File:\s*(\d+)\s*$", re.I)
_RE_SZ = re.compile(r"^Seizure\s*(\d*)\s+(Start|End)\s+Time:\s*(\d+(?:\.\d+)?)\s*(?:seconds?|s)?\s*$", re.I)
_RE_CHAN = re.compile(r"^Channel\s+(\d+):\s*(.*?)\s*$", re.I)
_RE_CHAN_HEAD = re.compile(r"^Channels\s+(in\s+EDF\s+Files|changed):?\s*$", re.I)
_RE_RATE = re.compile(r"^Data\s+Sampling\s+Rate:\s*([\d.]+)\s*Hz\s*$", re.I)
_RE_KEY = re.compile(r"^(File\s+(Start|End)\s+Time|Number\s+of\s+Seizures|Seizure\s*\d*\s+(Start|End)\s+Time)", re.I)


def _clock_s(h: str, m: str, s: str) -> float:
    return int(h) * 3600.0 + int(m) * 60.0 + int(s)


def _close_file(path: Path, f: Optional[SummaryFile], pending: dict[str, list[float]]) -> None:
    """Pair the pending seizure starts and ends of summary entry `f` (in order), check them, store them."""
    if f is None:
        return
    starts, ends = pending["start"], pending["end"]
    if len(starts) != len(ends):
        raise DataError(f"{path}:{f.line}: {f.file_name}: {len(starts)} seizure start time(s) but {len(ends)} end time(s)")
    for s, e in zip(starts, ends):
        if e < s:
            raise DataError(f"{path}:{f.line}: {f.file_name}: seizure ends ({e} s) before it starts ({s} s)")
        f.seizures.append((s, e))
    f.seizures.sort()
    if len(f.seizures) != f.n_seizures:
        raise DataError(f"{path}:{f.line}: {f.file_name}: 'Number of Seizures in File: {f.n_seizures}' "
                        f"but {len(f.seizures)} seizure interval(s) listed")
    pending["start"], pending["end"] = [], []


def _set_file_time(path: Path, ln: int, cur: SummaryFile, m: re.Match, line: str, clock: dict[str, Any]) -> None:
    """A `File Start/End Time:` line → seconds since the first file's day (clock times past 24:00 and
    an earlier start than the previous file's roll over to the next day)."""
    which, t_clock = m.group(1).lower(), _clock_s(*m.group(2, 3, 4))
    text = line.split(":", 1)[1].strip()
    if which == "start":
        t = clock["day"] * DAY_S + t_clock
        while clock["prev_start"] is not None and t < clock["prev_start"]:  # earlier clock time → next day
            clock["day"] += 1
            t += DAY_S
        cur.start_time, cur.start_clock, clock["prev_start"] = t, text, t
        return
    if cur.start_time is None:
        raise DataError(f"{path}:{ln}: {cur.file_name}: 'File End Time' without a start time")
    t = (cur.start_time // DAY_S) * DAY_S + t_clock
    while t < cur.start_time:
        t += DAY_S
    cur.end_time, cur.end_clock = t, text


def parse_summary(path: str | Path) -> list[SummaryFile]:
    """Parse a CHB-MIT `chbNN-summary.txt` → one `SummaryFile` per `File Name:` entry.

    Handles `Seizure Start Time` / `Seizure 1 Start Time` (any spacing), clock times past
    24:00 and day rollovers, missing file times, and `Channels changed:` blocks (each file
    gets the channel list in force where it appears). Errors name the file and line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"summary file not found: {path}")
    files: list[SummaryFile] = []
    channels: list[str] = []
    in_channels = False
    # seizure times of the current file in order of appearance; the n-th start pairs with the n-th
    # end (numbers are not trusted: chb09_08 lists "Seizure 1 End Time" for its second seizure)
    pending: dict[str, list[float]] = {"start": [], "end": []}
    clock: dict[str, Any] = {"day": 0, "prev_start": None}  # day rollovers of the file start times

    cur: Optional[SummaryFile] = None
    with open(path, encoding="latin-1") as fh:
        lines = fh.read().splitlines()
    for ln, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or set(line) <= {"*"}:
            continue
        if _RE_CHAN_HEAD.match(line):
            channels, in_channels = [], True
            continue
        m = _RE_CHAN.match(line)
        if m:
            if not in_channels:
                raise DataError(f"{path}:{ln}: 'Channel' line outside a channel block: {line!r}")
            channels = channels + [m.group(2)]
            continue
        in_channels = False
        if _RE_RATE.match(line):
            continue
        m = _RE_FILE.match(line)
        if m:
            _close_file(path, cur, pending)
            cur = SummaryFile(file_name=m.group(1), start_time=None, end_time=None, n_seizures=0,
                              channels=list(channels), line=ln)
            files.append(cur)
            continue
        if cur is None:
            log.warning("%s:%d: ignored line before the first 'File Name:': %r", path, ln, line)
            continue
        m = _RE_TIME.match(line)
        if m:
            _set_file_time(path, ln, cur, m, line, clock)
            continue
        m = _RE_NSZ.match(line)
        if m:
            cur.n_seizures = int(m.group(1))
            continue
        m = _RE_SZ.match(line)
        if m:
            pending[m.group(2).lower()].append(float(m.group(3)))
            continue
        if _RE_KEY.match(line):
            raise DataError(f"{path}:{ln}: {cur.file_name}: cannot parse {line!r}")
        log.warning("%s:%d: unrecognised line ignored: %r", path, ln, line)
    _close_file(path, cur, pending)
    return files


def read_seizures_annotation(path: str | Path, fs: Optional[float] = None) -> list[tuple[float, float]]:
    """Seizure intervals (start_s, end_s) from a PhysioNet WFDB `*.edf.seizures` annotation file.

    Format: 16-bit little-endian words, annotation type in the top 6 bits, time increment
    (samples) in the low 10; SKIP (59) is followed by a 32-bit PDP-11 long (high word first)
    added to the time; AUX (63) carries `I` bytes of text (padded to even); NUM/SUB/CHN
    (60–62) are modifiers; 0/0 ends the file. Seizures are '[' (32) … ']' (33) pairs.
    The time resolution comes from the `## time resolution: N` note, else `fs`, else 256 Hz.
    """
    path = Path(path)
    raw = path.read_bytes()
    pos, t = 0, 0
    events: list[tuple[int, int]] = []
    resolution: Optional[float] = None
    n = len(raw)
    while pos + 2 <= n:
        w = raw[pos] | (raw[pos + 1] << 8)
        pos += 2
        a, inc = w >> 10, w & 0x3FF
        if a == 0 and inc == 0:
            break
        if a == 59:  # SKIP: 4-byte PDP-11 long
            if pos + 4 > n:
                raise DataError(f"{path}: truncated SKIP at byte {pos - 2}")
            hi = raw[pos] | (raw[pos + 1] << 8)
            lo = raw[pos + 2] | (raw[pos + 3] << 8)
            v = (hi << 16) | lo
            t += v - (1 << 32) if v & 0x80000000 else v
            pos += 4
            continue
        if a == 63:  # AUX string of `inc` bytes
            text = raw[pos : pos + inc].decode("latin-1")
            pos += inc + (inc & 1)
            m = re.search(r"time resolution:\s*([\d.]+)", text)
            if m:
                resolution = float(m.group(1))
            continue
        if a in (60, 61, 62):  # NUM, SUB, CHN modifiers of the previous annotation
            continue
        t += inc
        events.append((t, a))
    res = resolution or fs or CHBMIT_FS
    out: list[tuple[float, float]] = []
    start: Optional[int] = None
    for t, a in events:
        if a == 32:
            if start is not None:
                raise DataError(f"{path}: seizure start '[' at sample {t} before the previous one ended")
            start = t
        elif a == 33:
            if start is None:
                raise DataError(f"{path}: seizure end ']' at sample {t} without a start")
            out.append((start / res, t / res))
            start = None
    if start is not None:
        raise DataError(f"{path}: seizure start '[' at sample {start} has no end")
    return out


# --------------------------------------------------------------------------- layout


_RE_PATIENT = re.compile(r"^(chb\d+)", re.I)


# chb21 was recorded from the same subject as chb01, 1.5 years later (PhysioNet's notes): one
# group, so patient-grouped folds stay subject-independent.
SAME_SUBJECT = {"chb21": "chb01"}


def subject_of(patient: str) -> str:
    """The subject a case belongs to: the fold group ('chb21' → 'chb01')."""
    return SAME_SUBJECT.get(patient, patient)


def patient_of(recording_id: str) -> str:
    """'chb17a_03' → 'chb17'."""
    m = _RE_PATIENT.match(str(recording_id))
    if not m:
        raise ValueError(f"not a CHB-MIT recording id: {recording_id!r} (expected 'chbNN_MM')")
    return m.group(1).lower()


def _norm_patient(p: str | int) -> str:
    s = str(p).strip().lower()
    return f"chb{int(s):02d}" if s.isdigit() else s


def summary_path(data_dir: str | Path, patient: str) -> Optional[Path]:
    """`data_dir/chbNN/chbNN-summary.txt`, else `data_dir/chbNN-summary.txt`, else None."""
    d = Path(data_dir)
    for p in (d / patient / f"{patient}-summary.txt", d / f"{patient}-summary.txt"):
        if p.exists():
            return p
    return None


def find_patients(data_dir: str | Path) -> list[str]:
    """Patients present under `data_dir` (folders `chbNN/` or summaries `chbNN-summary.txt`)."""
    d = Path(data_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"CHB-MIT data folder not found: {d}")
    found = {p.name.lower() for p in d.iterdir() if p.is_dir() and re.fullmatch(r"chb\d+", p.name, re.I)}
    found |= {p.name.split("-")[0].lower() for p in d.glob("chb*-summary.txt")}
    return sorted(found)


def edf_path(data_dir: str | Path, recording_id: str) -> Path:
    """`data_dir/chbNN/<recording_id>.edf`."""
    return Path(data_dir) / patient_of(recording_id) / f"{recording_id}.edf"


@dataclass
class _FileInfo:
    recording_id: str
    duration_s: float
    seizures: list[tuple[float, float]]
    abs_start: Optional[float]


def patient_recordings(data_dir: str | Path, patient: str) -> list[_FileInfo]:
    """Files of one patient in name order, with length (EDF header, else summary times) and seizures.

    EDF files on disk but absent from the summary are included as seizure-free (as in chb24,
    whose summary lists only its seizure files); listed files missing on disk or with an
    unreadable header keep their summary length so that `prepare` can report them; files
    with neither a header nor summary times are skipped.
    """
    spath = summary_path(data_dir, patient)
    if spath is None:
        raise DataError(f"no summary for {patient}: looked for {Path(data_dir) / patient / f'{patient}-summary.txt'} "
                        f"and {Path(data_dir) / f'{patient}-summary.txt'}")
    entries = {f.recording_id: f for f in parse_summary(spath)}
    on_disk = {p.stem for p in (Path(data_dir) / patient).glob("*.edf")} if (Path(data_dir) / patient).is_dir() else set()
    unlisted = sorted(on_disk - set(entries))
    if unlisted:
        log.warning("%s: %d EDF file(s) not in %s assumed seizure-free: %s", patient, len(unlisted), spath.name,
                    ", ".join(unlisted[:5]) + (" …" if len(unlisted) > 5 else ""))
    out: list[_FileInfo] = []
    for rid in sorted(set(entries) | on_disk):
        e = entries.get(rid)
        path = edf_path(data_dir, rid)
        duration: Optional[float] = None
        problem = "file missing"
        if rid in on_disk:
            try:
                duration = read_edf(path).duration_s
            except DataError as err:  # kept in the table: `CHBMITAdapter.missing_reason` reports it to prepare
                problem = f"unreadable header ({err})"
        if duration is None:
            if e is None or e.duration_s is None:
                log.warning("%s: %s and no times in %s; skipped", path, problem, spath)
                continue
            log.warning("%s: %s; using the summary length %.0f s", path, problem, e.duration_s)
            duration = e.duration_s
        sz = [(s, min(t, duration)) for s, t in (e.seizures if e else []) if s < duration]
        if e is not None and len(sz) < len(e.seizures):
            log.warning("%s: %d seizure(s) start past the end of the file (%.0f s)", path, len(e.seizures) - len(sz), duration)
        out.append(_FileInfo(rid, duration, sz, e.start_time if e else None))
    return out


def _rec_starts(files: list[_FileInfo]) -> np.ndarray:
    """Start of each file since the patient's first file (s): summary clock times, else previous end."""
    rs = np.zeros(len(files))
    for i, f in enumerate(files):
        if i == 0:
            continue
        if f.abs_start is not None and files[0].abs_start is not None:
            rs[i] = f.abs_start - files[0].abs_start
        else:
            rs[i] = rs[i - 1] + files[i - 1].duration_s
    return rs


def build_table(data_dir: str | Path, patients: Optional[Sequence[str]] = None, window_s: float = 10.0,
                stride_s: float = 5.0, label: str = "hard", hard_min_overlap: float = 0.5) -> pd.DataFrame:
    """The CHB-MIT sample table: one row per window of every file (see `CHBMITAdapter.table`)."""
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window_s and stride_s must be positive, got {window_s}, {stride_s}")
    if label not in ("soft", "hard"):
        raise ValueError(f"label must be 'soft' or 'hard', got {label!r}")
    available = find_patients(data_dir)
    if patients:
        wanted = [_norm_patient(p) for p in patients]
        absent = [p for p in wanted if p not in available]
        if absent:
            raise DataError(f"{data_dir}: patient(s) {absent} not found (available: {available})")
    else:
        wanted = available
    parts = []
    for patient in wanted:
        files = patient_recordings(data_dir, patient)
        for f, rec_start in zip(files, _rec_starts(files)):
            parts.append(recording_windows(f.recording_id, subject_of(patient), f.duration_s, f.seizures, window_s,
                                           stride_s, label, hard_min_overlap, float(rec_start)))
    cols = ["sample_id", "recording_id", "group", "start_s", "duration_s", "background_vote", "seizure_vote",
            "n_votes", "seizure_overlap", "rec_start_s"]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object if c in cols[:3] else float) for c in cols})
    table = pd.concat(parts, ignore_index=True)[cols]
    n_pos = int((table.seizure_overlap > 0).sum())
    log.info("CHB-MIT table: %d windows from %d files of %d patient(s); %d windows touch a seizure",
             len(table), table.recording_id.nunique(), len(wanted), n_pos)
    return table


# --------------------------------------------------------------------------- adapter


class CHBMITAdapter(EDFMontageAdapter):
    """CHB-MIT: per-patient summaries + EDF files, cut into fixed windows; the seizure task."""

    name = "chbmit"
    synthetic = "hbac.datasets.synthetic.chbmit:synth"
    fs = CHBMIT_FS

    def table(self, cfg: DataConfig) -> pd.DataFrame:
        """All windows of every file of `cfg.options.patients` (all patients if unset) as the sample table.

        Columns: sample_id ('chb01_03_002990.0'), recording_id ('chb01_03'), group ('chb01'),
        start_s, duration_s, background_vote, seizure_vote, n_votes (1), seizure_overlap
        (fraction of the window in seizure), rec_start_s (file start since the patient's first
        file, from summary clock times; previous file's end where times are absent).
        `cfg.split` is ignored: CHB-MIT has no test split.
        """
        w = cfg.options.windows
        return build_table(cfg.data_dir, cfg.options.patients, w.window_s, w.stride_s, w.label, w.hard_min_overlap)

    def path(self, cfg: DataConfig, recording_id: Any) -> Path:
        """`data_dir/chbNN/chbNN_MM.edf`."""
        return edf_path(cfg.data_dir, str(recording_id))


ADAPTER = register(CHBMITAdapter())
