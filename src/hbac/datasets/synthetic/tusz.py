"""Synthetic TUSZ v2 data in its native layout.

`edf/{train,dev}/<subject>/s001_2015_03_02/{01_tcp_ar,02_tcp_le}/<subject>_s001_tNNN.edf` with
referential `EEG XX-REF` / `EEG XX-LE` channel names (old 10-20 names, A1/A2, plus non-EEG
`EEG EKG1-REF`, `PHOTIC-REF`, `IBI`, `BURSTS`, `SUPPR`), sampling rates varying between files
(250, 256, 400, 512 Hz), and the two annotation files beside each EDF: `.csv_bi` (TERM rows,
`bckg`/`seiz`) and `.csv` (per TCP channel, `bckg` or the seizure type, `fnsz`/`gnsz`/`cpsz`),
each with its `#` header comment lines. Signals are simulated like synthetic CHB-MIT.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from hbac.datasets.base import SynthOptions
from hbac.datasets.edf import write_edf
from hbac.datasets.synthetic.chbmit import FOCI, place_seizures, simulate_electrodes
from hbac.io import atomic_write_text
from hbac.signals.montage import TCP_MONTAGE

log = logging.getLogger(__name__)

RATES = (250, 256, 400, 512)
MONTAGES = {"01_tcp_ar": "REF", "02_tcp_le": "LE"}
ELECTRODES = ["FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T3", "T4", "T5", "T6",
              "A1", "A2", "FZ", "CZ", "PZ"]
EXTRA = ["EEG EKG1-REF", "PHOTIC-REF", "IBI", "BURSTS", "SUPPR"]
_NEW = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
SZ_LABELS = ("fnsz", "gnsz", "cpsz")


def _header(stem: str, duration_s: float) -> str:
    return (f"# version = csv_v1.0.0\n# bname = {stem}\n# duration = {duration_s:.2f} secs\n"
            "# montage_file = $NEDC_NFC/lib/nedc_eas_default_montage.txt\n#\n"
            "channel,start_time,stop_time,label,confidence\n")


def _term_rows(seizures: list[tuple[int, int]], duration_s: float, channel: str, sz_label: str) -> list[str]:
    """Rows covering [0, duration] alternately bckg / seizure for one channel."""
    rows, t = [], 0.0
    for s, e in seizures:
        if s > t:
            rows.append(f"{channel},{t:.4f},{float(s):.4f},bckg,1.0000")
        rows.append(f"{channel},{float(s):.4f},{float(e):.4f},{sz_label},1.0000")
        t = float(e)
    if t < duration_s:
        rows.append(f"{channel},{t:.4f},{duration_s:.4f},bckg,1.0000")
    return rows


def _signals(x: np.ndarray, names: list[str], ref: str, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Simulated electrodes → referential EEG channels (+ non-EEG extras) and their labels."""
    idx = {n: i for i, n in enumerate(names)}
    # A1/A2 (ear references) are not simulated: quiet copies of the nearest temporal electrodes
    elec = {e: (0.3 * x[idx[_NEW.get({"A1": "T3", "A2": "T4"}[e], e)]] if e in ("A1", "A2") else x[idx[_NEW.get(e, e)]])
            for e in ELECTRODES}
    if ref == "LE":  # linked ears: subtract the mean of A1 and A2 from every electrode
        ears = 0.5 * (elec["A1"] + elec["A2"])
        elec = {e: (v - ears if e not in ("A1", "A2") else v) for e, v in elec.items()}
    rows = [elec[e] for e in ELECTRODES] + [rng.normal(0, 5, x.shape[1]) for _ in EXTRA]
    labels = [f"EEG {e}-{ref}" for e in ELECTRODES] + EXTRA
    return np.stack(rows), labels


def write_tusz(out: Path, n_subjects: int = 3, n_files: int = 2, file_s: float = 240.0, seed: int = 0) -> list[Path]:
    """Write a synthetic TUSZ v2 tree; returns the EDF paths. Every subject has a seizure and (with ≥ 2 files)
    a seizure-free file; the last subject is in `dev`, the others in `train`."""
    out = Path(out)
    paths = []
    k = 0
    for s in range(n_subjects):
        rng = np.random.default_rng([seed, 11, s])
        subject = "aaaaa" + "".join(chr(ord("a") + int(c)) for c in rng.integers(0, 26, 3))
        split = "dev" if s == n_subjects - 1 and n_subjects > 1 else "train"
        focus = FOCI[int(rng.integers(len(FOCI)))]
        counts = rng.choice([1, 2], size=n_files)
        if n_files >= 2:
            counts[int(rng.integers(n_files))] = 0
        start = datetime(2015, 3, 2, 10, 0, 0)
        for t in range(n_files):
            fs = float(RATES[k % len(RATES)])
            folder_name = list(MONTAGES)[k % len(MONTAGES)]
            k += 1
            stem = f"{subject}_s001_t{t:03d}"
            folder = out / "edf" / split / subject / "s001_2015_03_02" / folder_name
            seizures = place_seizures(rng, int(counts[t]), file_s)
            x, names = simulate_electrodes(rng, int(round(file_s * fs)), fs, seizures, focus)
            sig, labels = _signals(x, names, MONTAGES[folder_name], rng)
            write_edf(folder / f"{stem}.edf", np.clip(sig, -799.0, 799.0), fs, labels, start)
            sz_label = SZ_LABELS[int(rng.integers(len(SZ_LABELS)))]
            atomic_write_text(folder / f"{stem}.csv_bi",
                              _header(stem, file_s) + "\n".join(_term_rows(seizures, file_s, "TERM", "seiz")) + "\n")
            rows = [r for ch in TCP_MONTAGE for r in _term_rows(seizures, file_s, ch, sz_label)]
            atomic_write_text(folder / f"{stem}.csv", _header(stem, file_s) + "\n".join(rows) + "\n")
            paths.append(folder / f"{stem}.edf")
            start += timedelta(seconds=file_s + 30)
    log.info("synthetic TUSZ: %d subjects × %d files × %.0f s → %s", n_subjects, n_files, file_s, out)
    return paths


def synth(out: Path, opts: SynthOptions) -> None:
    """`hbac synth tusz`: `opts.n_patients` subjects × `opts.n_files` files of `opts.file_s` s."""
    write_tusz(out, n_subjects=opts.n_patients, n_files=opts.n_files, file_s=opts.file_s, seed=opts.seed)
