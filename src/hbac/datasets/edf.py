"""Minimal EDF (European Data Format, 16-bit) reader and writer in numpy.

Reading parses the header eagerly and the data lazily: `read_edf(path)` returns an
`EDFRecording` whose `.read(channels)` decodes only the requested signals (the data
section is read once as `(n_records, samples_per_record_total)` int16 and sliced).
Physical values are `phys = (dig - dmin) * (pmax - pmin) / (dmax - dmin) + pmin`
(µV for EEG). EDF+ "EDF Annotations" signals are kept in the header lists but never
decoded as signal data.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from hbac.errors import DataError
from hbac.io import atomic_path

log = logging.getLogger(__name__)

ANNOTATION_LABEL = "EDF Annotations"
_FIXED_FIELDS = [("version", 8), ("patient", 80), ("recording", 80), ("startdate", 8), ("starttime", 8),
                 ("header_bytes", 8), ("reserved", 44), ("n_records", 8), ("record_duration", 8), ("n_signals", 4)]
_SIGNAL_FIELDS = [("label", 16), ("transducer", 80), ("unit", 8), ("phys_min", 8), ("phys_max", 8),
                  ("dig_min", 8), ("dig_max", 8), ("prefilter", 80), ("samples_per_record", 8), ("reserved", 32)]

Channel = Union[int, str]


@dataclass
class EDFRecording:
    """Header of one EDF file plus lazy access to its signals (`read`, `signals`)."""

    path: Path
    labels: list[str]
    units: list[str]
    samples_per_record: np.ndarray  # (n_signals,) int64
    record_duration_s: float
    n_records: int
    start: datetime
    phys_min: np.ndarray  # (n_signals,) float64
    phys_max: np.ndarray
    dig_min: np.ndarray
    dig_max: np.ndarray
    header_bytes: int
    patient: str = ""
    recording: str = ""
    prefilters: list[str] = field(default_factory=list)
    _signals: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def n_signals(self) -> int:
        """Number of signals in the file (annotation signals included)."""
        return len(self.labels)

    @property
    def fs(self) -> np.ndarray:
        """(n_signals,) sampling rate of each signal in Hz."""
        return self.samples_per_record / self.record_duration_s

    @property
    def duration_s(self) -> float:
        """Recording length in seconds (n_records × record duration)."""
        return self.n_records * self.record_duration_s

    def n_times(self, channel: Channel = 0) -> int:
        """Samples of one signal over the whole file (n_records × samples per record)."""
        return int(self.n_records * self.samples_per_record[self.index(channel)])

    def index(self, channel: Channel) -> int:
        """Signal index of a label (case-insensitive, first match) or a plain index."""
        if isinstance(channel, (int, np.integer)):
            if not 0 <= int(channel) < self.n_signals:
                raise DataError(f"{self.path}: signal index {channel} out of range (file has {self.n_signals})")
            return int(channel)
        key = channel.strip().upper()
        for i, lab in enumerate(self.labels):
            if lab.strip().upper() == key:
                return i
        raise DataError(f"{self.path}: no channel {channel!r} (channels: {self.labels})")

    def read(self, channels: Optional[Sequence[Channel]] = None) -> np.ndarray:
        """Decode signals → (n_selected, n_times) float32 in physical units (µV).

        `channels`: labels (case-insensitive, first match) or indices; default all
        non-annotation signals. The selected signals must share one sampling rate.
        """
        if channels is None:
            idx = [i for i, lab in enumerate(self.labels) if lab.strip() != ANNOTATION_LABEL]
        else:
            idx = [self.index(c) for c in channels]
        if not idx:
            return np.zeros((0, 0), dtype=np.float32)
        spr = self.samples_per_record[idx]
        if np.any(spr != spr[0]):
            rates = {self.labels[i]: float(self.fs[i]) for i in idx}
            raise DataError(f"{self.path}: selected channels have different sampling rates {rates}; read them separately")
        data = self._records()
        offsets = np.concatenate([[0], np.cumsum(self.samples_per_record)])
        n = int(spr[0])
        out = np.empty((len(idx), self.n_records * n), dtype=np.float32)
        for r, i in enumerate(idx):
            dig = data[:, offsets[i] : offsets[i] + n].reshape(-1)
            scale = (self.phys_max[i] - self.phys_min[i]) / (self.dig_max[i] - self.dig_min[i])
            out[r] = (dig.astype(np.float64) - self.dig_min[i]) * scale + self.phys_min[i]
        return out

    @property
    def signals(self) -> np.ndarray:
        """All non-annotation signals, (n_signals', n_times) float32 µV, decoded on first access."""
        if self._signals is None:
            self._signals = self.read()
        return self._signals

    def _records(self) -> np.ndarray:
        """The data section as (n_records, samples_per_record_total) int16 (memory-mapped)."""
        total = int(self.samples_per_record.sum())
        if self.n_records == 0:
            return np.zeros((0, total), dtype="<i2")
        return np.memmap(self.path, dtype="<i2", mode="r", offset=self.header_bytes, shape=(self.n_records, total))


def _field(raw: bytes, pos: int, width: int, path: Path, name: str) -> tuple[str, int]:
    chunk = raw[pos : pos + width]
    if len(chunk) < width:
        raise DataError(f"{path}: truncated EDF header (field '{name}' at byte {pos})")
    return chunk.decode("latin-1").strip(), pos + width


def _number(text: str, path: Path, name: str, cast: type = float) -> float:
    try:
        return cast(float(text)) if cast is int else cast(text)
    except ValueError:
        raise DataError(f"{path}: corrupt EDF header, field '{name}' = {text!r} is not a number") from None


def _parse_start(date: str, time: str, path: Path) -> datetime:
    """EDF 'dd.mm.yy' + 'hh.mm.ss' → datetime (yy 85–99 → 19yy, else 20yy, per the EDF spec)."""
    try:
        dd, mm, yy = (int(v) for v in date.replace(":", ".").split("."))
        hh, mi, ss = (int(v) for v in time.replace(":", ".").split("."))
        return datetime(1900 + yy if yy >= 85 else 2000 + yy, mm, dd, hh, mi, ss)
    except ValueError:
        raise DataError(f"{path}: corrupt EDF header, start date/time {date!r} {time!r}") from None


def read_edf(path: str | Path) -> EDFRecording:
    """Parse an EDF header; signals are decoded lazily (`rec.read([...])`, `rec.signals`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"EDF file not found: {path}")
    with open(path, "rb") as f:
        fixed = f.read(256)
        if len(fixed) < 256:
            raise DataError(f"{path}: truncated EDF header ({len(fixed)} of 256 bytes)")
        vals: dict[str, str] = {}
        pos = 0
        for name, width in _FIXED_FIELDS:
            vals[name], pos = _field(fixed, pos, width, path, name)
        ns = int(_number(vals["n_signals"], path, "n_signals", int))
        if ns <= 0:
            raise DataError(f"{path}: corrupt EDF header, number of signals is {ns}")
        sig_raw = f.read(256 * ns)
        if len(sig_raw) < 256 * ns:
            raise DataError(f"{path}: truncated EDF header ({256 + len(sig_raw)} of {256 * (ns + 1)} bytes)")
    sig: dict[str, list[str]] = {}
    pos = 0
    for name, width in _SIGNAL_FIELDS:
        sig[name] = []
        for k in range(ns):
            v, pos = _field(sig_raw, pos, width, path, f"{name}[{k}]")
            sig[name].append(v)
    header_bytes = int(_number(vals["header_bytes"], path, "header_bytes", int))
    if header_bytes != 256 * (ns + 1):
        raise DataError(f"{path}: corrupt EDF header, header size {header_bytes} != 256 × (1 + {ns} signals)")
    arrays = {k: np.array([_number(v, path, f"{k}[{i}]") for i, v in enumerate(sig[k])], dtype=np.float64)
              for k in ("phys_min", "phys_max", "dig_min", "dig_max")}
    spr = np.array([int(_number(v, path, f"samples_per_record[{i}]", int)) for i, v in enumerate(sig["samples_per_record"])], dtype=np.int64)
    bad = np.nonzero((arrays["dig_max"] <= arrays["dig_min"]) | (arrays["phys_max"] == arrays["phys_min"]) | (spr <= 0))[0]
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{path}: corrupt EDF header, signal {i} ({sig['label'][i]!r}) has digital range "
                        f"[{arrays['dig_min'][i]}, {arrays['dig_max'][i]}], physical range "
                        f"[{arrays['phys_min'][i]}, {arrays['phys_max'][i]}], {spr[i]} samples/record")
    record_duration = _number(vals["record_duration"], path, "record_duration")
    if record_duration <= 0:
        raise DataError(f"{path}: corrupt EDF header, record duration {record_duration}")
    record_bytes = 2 * int(spr.sum())
    data_bytes = path.stat().st_size - header_bytes
    n_records = int(_number(vals["n_records"], path, "n_records", int))
    if n_records < 0:  # -1: unknown (recording in progress); infer from the file size
        n_records = data_bytes // record_bytes
    elif n_records * record_bytes > data_bytes:
        raise DataError(f"{path}: truncated EDF data: header says {n_records} records × {record_bytes} bytes, "
                        f"file has {data_bytes} bytes after the header ({data_bytes // record_bytes} complete records)")
    return EDFRecording(
        path=path,
        labels=sig["label"],
        units=sig["unit"],
        samples_per_record=spr,
        record_duration_s=float(record_duration),
        n_records=n_records,
        start=_parse_start(vals["startdate"], vals["starttime"], path),
        phys_min=arrays["phys_min"],
        phys_max=arrays["phys_max"],
        dig_min=arrays["dig_min"],
        dig_max=arrays["dig_max"],
        header_bytes=header_bytes,
        patient=vals["patient"],
        recording=vals["recording"],
        prefilters=sig["prefilter"],
    )


def _fmt(value: object, width: int) -> bytes:
    """Left-aligned ASCII field padded with spaces; errors if it does not fit."""
    s = str(value)
    if len(s) > width:
        raise ValueError(f"EDF header field {s!r} longer than {width} characters")
    return s.ljust(width).encode("ascii")


def _fmt_num(v: float, width: int = 8) -> bytes:
    """A number in at most `width` characters (EDF numeric fields are 8 ASCII characters)."""
    if float(v).is_integer():
        return _fmt(str(int(v)), width)
    for prec in range(width, 0, -1):
        s = f"{v:.{prec}g}"
        if len(s) <= width:
            return _fmt(s, width)
    raise ValueError(f"cannot write {v} in {width} characters")


def write_edf(
    path: str | Path,
    signals: np.ndarray,
    fs: float,
    labels: Sequence[str],
    start: datetime,
    phys_min: Union[float, Sequence[float]] = -800.0,
    phys_max: Union[float, Sequence[float]] = 800.0,
    unit: str = "uV",
    patient: str = "X X X X",
    recording: str = "Startdate X X X X",
) -> None:
    """Write signals (C, T) µV at `fs` Hz as a 16-bit EDF with 1 s data records (atomic).

    `fs` must be an integer number of Hz; T is padded with zeros to whole seconds; values
    outside [phys_min, phys_max] are clipped (and logged).
    """
    x = np.asarray(signals, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"signals must be (n_channels, n_times), got shape {x.shape}")
    c, t = x.shape
    if len(labels) != c:
        raise ValueError(f"{len(labels)} labels for {c} channels")
    if abs(fs - round(fs)) > 1e-9 or fs <= 0:
        raise ValueError(f"write_edf uses 1 s records and needs an integer sampling rate, got {fs}")
    n = int(round(fs))
    n_records = -(-t // n)
    if n_records * n != t:
        log.warning("%s: %d samples is not a whole number of seconds at %d Hz; padding with zeros", path, t, n)
        x = np.pad(x, ((0, 0), (0, n_records * n - t)))
    pmin = np.broadcast_to(np.asarray(phys_min, dtype=np.float64), (c,))
    pmax = np.broadcast_to(np.asarray(phys_max, dtype=np.float64), (c,))
    if np.any(pmax <= pmin):
        raise ValueError("phys_max must be greater than phys_min for every channel")
    dmin, dmax = -32768.0, 32767.0
    n_clip = int(np.sum((x < pmin[:, None]) | (x > pmax[:, None])))
    if n_clip:
        log.warning("%s: %d samples outside the physical range clipped", path, n_clip)
    dig = (np.clip(x, pmin[:, None], pmax[:, None]) - pmin[:, None]) / (pmax - pmin)[:, None] * (dmax - dmin) + dmin
    dig = np.clip(np.round(dig), dmin, dmax).astype("<i2")
    # data records: (n_records, C, n) → record-major, channel blocks inside each record
    data = dig.reshape(c, n_records, n).transpose(1, 0, 2)

    head = b"".join([
        _fmt("0", 8), _fmt(patient, 80), _fmt(recording, 80),
        _fmt(start.strftime("%d.%m.%y"), 8), _fmt(start.strftime("%H.%M.%S"), 8),
        _fmt(256 * (c + 1), 8), _fmt("", 44), _fmt(n_records, 8), _fmt(1, 8), _fmt(c, 4),
    ])
    per = [
        [_fmt(lab, 16) for lab in labels],
        [_fmt("", 80)] * c,
        [_fmt(unit, 8)] * c,
        [_fmt_num(v) for v in pmin],
        [_fmt_num(v) for v in pmax],
        [_fmt_num(dmin)] * c,
        [_fmt_num(dmax)] * c,
        [_fmt("", 80)] * c,
        [_fmt(n, 8)] * c,
        [_fmt("", 32)] * c,
    ]
    header = head + b"".join(b"".join(col) for col in per)
    assert len(header) == 256 * (c + 1)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(np.ascontiguousarray(data).tobytes())
