"""EDF (European Data Format, 16-bit) reading and writing through pyEDFlib (EDFlib, maintained).

`read_edf(path)` parses the header and returns an `EDFRecording` whose `.read(channels)`
decodes only the requested signals. Physical values are
`phys = (dig - dmin) * (pmax - pmin) / (dmax - dmin) + pmin` (µV for EEG). EDF+ annotation
signals are not listed. Duplicate labels (CHB-MIT's two `T8-P8`) and dummy `-` channels are
kept as they are; label lookup takes the first match.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pyedflib

from hbac.errors import DataError
from hbac.io import atomic_path

log = logging.getLogger(__name__)

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

        `channels`: labels (case-insensitive, first match) or indices; default all signals.
        The selected signals must share one sampling rate.
        """
        idx = list(range(self.n_signals)) if channels is None else [self.index(c) for c in channels]
        if not idx:
            return np.zeros((0, 0), dtype=np.float32)
        spr = self.samples_per_record[idx]
        if np.any(spr != spr[0]):
            rates = {self.labels[i]: float(self.fs[i]) for i in idx}
            raise DataError(f"{self.path}: selected channels have different sampling rates {rates}; read them separately")
        n = int(self.n_records * spr[0])
        out = np.empty((len(idx), n), dtype=np.float32)
        with _open(self.path) as f:
            for r, i in enumerate(idx):
                out[r] = f.readSignal(i, 0, n)
        return out

    @property
    def signals(self) -> np.ndarray:
        """All signals, (n_signals, n_times) float32 µV, decoded on first access."""
        if self._signals is None:
            self._signals = self.read()
        return self._signals


def _open(path: Path) -> pyedflib.EdfReader:
    """Open an EDF with pyEDFlib; its format errors become a DataError naming the file."""
    try:
        return pyedflib.EdfReader(str(path))
    except OSError as e:
        raise DataError(f"{path}: not a valid EDF file ({_truncation(path) or str(e).removeprefix(f'{path}: ')})") from None


def _truncation(path: Path) -> Optional[str]:
    """'truncated EDF header (n of m bytes)' when the file is shorter than its header, else None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(256)
    try:
        need = 256 * (1 + int(head[252:256].decode("latin-1"))) if size >= 256 else 256
    except ValueError:
        return None
    return f"truncated EDF header, {size} of {need} bytes" if size < need else None


def read_edf(path: str | Path) -> EDFRecording:
    """Parse an EDF header; signals are decoded lazily (`rec.read([...])`, `rec.signals`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"EDF file not found: {path}")
    with _open(path) as f:
        ns = f.signals_in_file
        n_records = int(f.datarecords_in_file)
        record_s = float(f.datarecord_duration)
        spr = np.array([int(round(n)) for n in f.getNSamples()], dtype=np.int64) // max(n_records, 1)
        per = {k: np.array([getattr(f, g)(i) for i in range(ns)], dtype=np.float64) for k, g in (
            ("phys_min", "getPhysicalMinimum"), ("phys_max", "getPhysicalMaximum"),
            ("dig_min", "getDigitalMinimum"), ("dig_max", "getDigitalMaximum"))}
        return EDFRecording(
            path=path,
            labels=[f.getLabel(i) for i in range(ns)],
            units=[f.getPhysicalDimension(i) for i in range(ns)],
            samples_per_record=spr,
            record_duration_s=record_s,
            n_records=n_records,
            start=f.getStartdatetime(),
            header_bytes=256 * (ns + 1),
            patient=f.getPatientName(),
            recording=f.getRecordingAdditional(),
            prefilters=[f.getPrefilter(i) for i in range(ns)],
            **per,
        )


def write_edf(
    path: str | Path,
    signals: np.ndarray,
    fs: float,
    labels: Sequence[str],
    start: datetime,
    phys_min: Union[float, Sequence[float]] = -800.0,
    phys_max: Union[float, Sequence[float]] = 800.0,
    unit: str = "uV",
    patient: str = "X",
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
    n_clip = int(np.sum((x < pmin[:, None]) | (x > pmax[:, None])))
    if n_clip:
        log.warning("%s: %d samples outside the physical range clipped", path, n_clip)
    # quantise here with rounding (EDFlib truncates physical values: up to one step of error)
    dmin, dmax = -32768, 32767
    scale = (dmax - dmin) / (pmax - pmin)
    dig = np.round((np.clip(x, pmin[:, None], pmax[:, None]) - pmin[:, None]) * scale[:, None] + dmin)
    dig = np.clip(dig, dmin, dmax).astype(np.int32)
    headers = [{"label": lab, "dimension": unit, "sample_frequency": n, "physical_min": float(lo),
                "physical_max": float(hi), "digital_min": dmin, "digital_max": dmax, "transducer": "",
                "prefilter": ""} for lab, lo, hi in zip(labels, pmin, pmax)]
    with atomic_path(path) as tmp:
        w = pyedflib.EdfWriter(str(tmp), c, file_type=pyedflib.FILETYPE_EDF)
        try:
            w.setSignalHeaders(headers)
            w.setStartdatetime(start)
            w.setPatientName(patient)
            w.writeSamples([np.ascontiguousarray(row) for row in dig], digital=True)
        finally:
            w.close()
