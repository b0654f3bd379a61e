"""Offline inference on test.csv → submission.csv (`python submit.py`)."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from hbac.datasets.hms import (
    ADAPTER,
    HMS_CLASSES,
    HMS_VOTE_COLS,
    eeg_path,
    find_kaggle_dir,
    read_test_csv,
    spec_path,
)
from hbac.errors import DataError
from hbac.inference.predict import class_prior, predict_experiment, resolve_members
from hbac.io import atomic_write_csv, clean_stale_temps, pid_alive

log = logging.getLogger(__name__)


TMP_PREFIX = "hbac_submit_"  # test caches in the system temp folder: hbac_submit_<pid>_*


def clean_stale_submit_temps(out: Path) -> list[Path]:
    """Remove what killed earlier runs left: `<tmp>/hbac_submit_<pid>_*` and temp files beside `out`, of dead pids only."""
    removed = clean_stale_temps(out)
    for p in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        pid = p.name[len(TMP_PREFIX):].split("_", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    if removed:
        log.info("removed %d temp file(s)/folder(s) left by killed runs: %s", len(removed), ", ".join(map(str, removed[:3])))
    return removed


def make_submission(
    data_dir: Optional[Path] = None,
    outputs: Path = Path("outputs"),
    ensemble: Optional[str] = None,
    experiment: Optional[str] = None,
    out: Path = Path("submission.csv"),
    batch_size: int = 32,
    progress: bool = True,
    timings: Optional[dict[str, float]] = None,
    allow_prior_fallback: bool = False,
) -> pd.DataFrame:
    """Offline inference on `test.csv` → `submission.csv` (columns of sample_submission.csv,
    one row per test eeg_id in test.csv order, rows summing to 1). With `timings`, adds the seconds
    spent per step (`cache`, `model_load`, `forward`, `write`).

    A test EEG that cannot be read (missing or unreadable EEG / spectrogram file) is a
    `DataError` naming the files; with `allow_prior_fallback` its row is the class prior instead.
    """
    data_dir = Path(data_dir) if data_dir else (find_kaggle_dir() or Path("inputs/hms"))
    test = read_test_csv(data_dir / "test.csv")
    ss_path = data_dir / "sample_submission.csv"
    columns = list(pd.read_csv(ss_path, nrows=0).columns) if ss_path.exists() else ["eeg_id"] + HMS_VOTE_COLS
    members = resolve_members(Path(outputs), ensemble, experiment, task=ADAPTER.task)  # default: the best entry of the task
    wsum = sum(members.values())
    log.info("submission from %s on %d test rows in %s", ", ".join(f"{m} (w={w / wsum:.3f})" for m, w in members.items()), len(test), data_dir)
    blend = np.zeros((len(test), len(HMS_CLASSES)))
    clean_stale_submit_temps(Path(out))
    with tempfile.TemporaryDirectory(prefix=f"{TMP_PREFIX}{os.getpid()}_") as tmp:
        for name, w in members.items():
            exp_dir = Path(outputs) / name
            samples, probs = predict_experiment(exp_dir, data_dir, "test", Path(tmp), batch_size=batch_size, progress=progress, timings=timings)
            prior = class_prior(exp_dir, HMS_CLASSES)
            full = np.tile(prior, (len(test), 1))
            pos = pd.Series(np.arange(len(samples)), index=samples["eeg_id"].to_numpy())
            idx = pos.reindex(test["eeg_id"].to_numpy()).to_numpy()
            ok = ~np.isnan(idx)
            full[ok] = probs[idx[ok].astype(int)]
            if (~ok).any():
                msg = f"{name}: {int((~ok).sum())} of {len(test)} test EEG(s) could not be read: {unreadable_files(data_dir, test.loc[~ok])}"
                if not allow_prior_fallback:
                    raise DataError(msg + "; fix the files, or pass --allow-prior-fallback to predict the class prior for them")
                log.warning("%s; predicting the class prior for them (--allow-prior-fallback)", msg)
            blend += (w / wsum) * full
    blend = blend / blend.sum(axis=1, keepdims=True)
    sub = pd.DataFrame({"eeg_id": test["eeg_id"].to_numpy()})
    for i, c in enumerate(HMS_VOTE_COLS):
        sub[c] = blend[:, i]
    sub = sub[[c for c in columns if c in sub.columns]]
    t = time.perf_counter()
    atomic_write_csv(out, sub)
    if timings is not None:
        timings["write"] = timings.get("write", 0.0) + time.perf_counter() - t
    log.info("wrote %s (%d rows)", out, len(sub))
    return sub


def unreadable_files(data_dir: Path, rows: pd.DataFrame, n: int = 5) -> str:
    """'test_eegs/1.parquet (missing), test_spectrograms/2.parquet, …' for test rows that were not predicted."""
    out = []
    for r in rows.head(n).itertuples():
        for p in (eeg_path(data_dir, int(r.eeg_id), "test"), spec_path(data_dir, int(r.spectrogram_id), "test")):
            out.append(f"{p}{'' if p.exists() else ' (missing)'}")
    return ", ".join(out) + (f" (+{len(rows) - n} more rows)" if len(rows) > n else "")
