"""`hbac stream`: a model trained on synthetic CHB-MIT replays the real seizure clip and a held-out synthetic
recording as live feeds, raises alarms online and reports detection latency and CPU cost."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hbac.config import ExperimentConfig
from hbac.datasets.chbmit import parse_summary
from hbac.datasets.edf import read_edf
from hbac.inference.stream import stream


@pytest.fixture(scope="module")
def chbmit_run(trained_chbmit: ExperimentConfig) -> ExperimentConfig:
    """The tiny CHB-MIT experiment trained once per test run (tests/conftest.py `trained_chbmit`). Read only."""
    return trained_chbmit


def _clip_seizure(shared: Path) -> tuple[Path, tuple[float, float]]:
    """The real chb01_03 seizure clip and its seizure in clip time (summary times shifted by the clip's start)."""
    clip = shared / "chbmit" / "clips" / "chb01_03_Seizure.edf"
    entry = {f.recording_id: f for f in parse_summary(shared / "chbmit" / "summaries" / "chb01-summary.txt")}["chb01_03"]
    start = read_edf(clip).start
    offset = (start.hour * 3600 + start.minute * 60 + start.second) - entry.start_time
    (on, off), = entry.seizures
    return clip, (on - offset, off - offset)


def test_stream_real_seizure_clip(chbmit_run, shared_data, tmp_path):
    clip, seizure = _clip_seizure(shared_data)
    assert seizure == (1.0, 41.0)  # 2996–3036 s of chb01_03; the clip starts at 2995 s
    r = stream(clip, outputs=Path(chbmit_run.output_root), name=chbmit_run.name, speed=0.0, seizures=[seizure],
               out=tmp_path / "stream.json")
    assert r["n_windows"] == 7 and len(r["probs"]) == 7 and r["eeg_s"] == 41.0  # 10 s windows every 5 s
    assert r["cpu_s_per_eeg_s"] > 0 and (tmp_path / "stream.json").exists()
    assert len(r["latency_s"]) == 1
    print(f"real clip: alarms {r['alarms_s']}, latency {r['latency_s']}, probs {np.round(r['probs'], 2).tolist()}, "
          f"{r['cpu_s_per_eeg_s'] * 1000:.2f} ms CPU per s of EEG")


def test_stream_heldout_synthetic_finds_seizures(chbmit_run, tmp_path):
    from hbac.datasets.synthetic import write_chbmit

    write_chbmit(tmp_path, n_patients=1, seed=1000, n_files=1, file_s=300.0)
    entry = parse_summary(tmp_path / "chb01" / "chb01-summary.txt")[0]
    r = stream(tmp_path / "chb01" / entry.file_name, outputs=Path(chbmit_run.output_root), name=chbmit_run.name,
               speed=0.0, seizures=list(entry.seizures))
    assert r["n_windows"] == 59
    assert all(la is not None for la in r["latency_s"]), r  # every seizure found online (within its tolerance)
    assert r["cpu_s_per_eeg_s"] < 1.0  # faster than real time on one CPU thread
