"""Synthetic SzCORE BIDS data: `sub-XX/ses-01/eeg/sub-XX_ses-01_task-szMonitoring_run-NN_eeg.edf` + `_events.tsv`.

The 19 electrodes of the 10-20 system (old names T3/T4/T5/T6) against the common average,
labelled `Fp1-Avg`, …, at 256 Hz, simulated like synthetic CHB-MIT (background plus evolving
focal seizures); events in the HED-SCORE `events.tsv` format with ILAE seizure types, a `bckg`
row for seizure-free runs. Deterministic for a seed.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from hbac.datasets.base import SynthOptions
from hbac.datasets.bids import BIDS_ELECTRODES
from hbac.datasets.edf import write_edf
from hbac.datasets.synthetic.chbmit import FOCI, place_seizures, simulate_electrodes
from hbac.io import atomic_write_text
from hbac.tasks.events import events_frame

log = logging.getLogger(__name__)

# modern → old 10-20 names (the simulator uses T7/T8/P7/P8)
_OLD = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
SZ_TYPES = ["sz_foc_ia", "sz_foc_a_m", "sz_gen_m_tonicClonic", "sz"]
TASK = "szMonitoring"


def referential(x: np.ndarray, names: list[str], electrodes: list[str]) -> np.ndarray:
    """(n_sim, n) simulated electrodes → (len(electrodes), n) against their common average."""
    idx = {_OLD.get(n, n): i for i, n in enumerate(names)}
    sel = np.stack([x[idx[e.upper()]] for e in electrodes])
    return sel - sel.mean(axis=0, keepdims=True)


def write_bids(out: Path, n_subjects: int = 3, n_runs: int = 2, file_s: float = 240.0, seed: int = 0,
               fs: float = 256.0) -> list[Path]:
    """Write a synthetic SzCORE BIDS root; returns the EDF paths. Every subject has a seizure and, with
    two or more runs, a seizure-free run."""
    out = Path(out)
    n = int(round(file_s * fs))
    labels = [f"{e}-Avg" for e in BIDS_ELECTRODES]
    paths = []
    atomic_write_text(out / "dataset_description.json",
                      json.dumps({"Name": "synthetic SzCORE BIDS", "BIDSVersion": "1.9.0", "DatasetType": "raw"}, indent=2))
    atomic_write_text(out / "participants.tsv",
                      "participant_id\n" + "".join(f"sub-{s + 1:02d}\n" for s in range(n_subjects)))
    for s in range(n_subjects):
        rng = np.random.default_rng([seed, 7, s])
        sub = f"sub-{s + 1:02d}"
        focus = FOCI[int(rng.integers(len(FOCI)))]
        counts = rng.choice([1, 2], size=n_runs)
        if n_runs >= 2:
            counts[int(rng.integers(n_runs))] = 0
        start = datetime(2020, 1, 1 + s, 9, 0, 0)
        for r in range(n_runs):
            rid = f"{sub}_ses-01_task-{TASK}_run-{r:02d}"
            folder = out / sub / "ses-01" / "eeg"
            seizures = place_seizures(rng, int(counts[r]), file_s)
            x, names = simulate_electrodes(rng, n, fs, seizures, focus)
            sig = np.clip(referential(x, names, BIDS_ELECTRODES), -799.0, 799.0)
            edf = folder / f"{rid}_eeg.edf"
            write_edf(edf, sig, fs, labels, start)
            kind = SZ_TYPES[int(rng.integers(len(SZ_TYPES)))]
            df = events_frame([(a, b) for a, b in seizures], file_s, start, event_type=kind, with_confidence=False)
            atomic_write_text(folder / f"{rid}_events.tsv", df.to_csv(sep="\t", index=False, lineterminator="\n"))
            atomic_write_text(folder / f"{rid}_eeg.json", json.dumps({
                "TaskName": TASK, "SamplingFrequency": fs, "EEGReference": "Avg", "RecordingDuration": file_s,
                "EEGChannelCount": len(labels), "PowerLineFrequency": 60}, indent=2))
            paths.append(edf)
            start += timedelta(seconds=file_s + 60)
    log.info("synthetic BIDS: %d subjects × %d runs × %.0f s → %s", n_subjects, n_runs, file_s, out)
    return paths


def synth(out: Path, opts: SynthOptions) -> None:
    """`hbac synth bids`: `opts.n_patients` subjects × `opts.n_files` runs of `opts.file_s` s."""
    write_bids(out, n_subjects=opts.n_patients, n_runs=opts.n_files, file_s=opts.file_s, seed=opts.seed)
