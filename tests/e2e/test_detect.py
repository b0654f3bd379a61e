"""`hbac.detect`: a CHB-MIT model trained here on synthetic data finds a known seizure in an EDF it never
saw, runs on the real CHB-MIT clips, blends ensembles, and fails clearly; the CHB-MIT demo end to end."""
from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CHBMIT_FILE_S, CHBMIT_FILES, CHBMIT_PATIENTS

from hbac.config import ExperimentConfig
from hbac.datasets.edf_montage import seizure_overlap
from hbac.errors import DataError
from hbac.inference.detect import default_threshold, detect, read_preprocessed, window_starts
from hbac.tasks.events import window_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chbmit_run(trained_chbmit: ExperimentConfig) -> ExperimentConfig:
    """The tiny CHB-MIT experiment trained once per test run (tests/conftest.py `trained_chbmit`). Read only."""
    return trained_chbmit


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    """A synthetic 300 s EDF from another seed (no model saw it) and its true seizures."""
    from hbac.datasets.chbmit import parse_summary
    from hbac.datasets.synthetic import write_chbmit

    root = tmp_path_factory.mktemp("heldout")
    write_chbmit(root, n_patients=1, seed=1000, n_files=1, file_s=300.0)  # one file: always >= 1 seizure
    entry = parse_summary(root / "chb01" / "chb01-summary.txt")[0]
    assert entry.seizures
    return root / "chb01" / entry.file_name, list(entry.seizures)


def _check_outputs(res: dict, duration_s: float, window_s: float = 10.0, stride_s: float = 5.0) -> pd.DataFrame:
    """windows.csv / events.csv / timeline.png exist and are well formed; returns the windows."""
    win = pd.read_csv(res["windows_csv"])
    assert list(win.columns) == ["start_s", "end_s", "seizure_prob"]
    n = int(np.floor((duration_s - window_s) / stride_s)) + 1
    assert len(win) == n == res["n_windows"], "one row per whole window"
    assert np.allclose(win["start_s"], np.arange(n) * stride_s) and np.allclose(win["end_s"] - win["start_s"], window_s)
    assert win["seizure_prob"].between(0.0, 1.0).all() and win["seizure_prob"].notna().all()
    ev = pd.read_csv(res["events_csv"])
    assert list(ev.columns) == ["start_s", "end_s", "peak_prob"] and len(ev) == len(res["events"])
    assert (ev["end_s"] > ev["start_s"]).all() and ev["peak_prob"].ge(res["threshold"]).all()
    png = Path(res["timeline_png"]).read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 10_000
    return win


@pytest.fixture(scope="module")
def detected(chbmit_run, heldout, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """`detect` of the trained experiment on the held-out EDF (default threshold), and its out_dir. Read only."""
    out = tmp_path_factory.mktemp("detected") / "det"
    return detect(heldout[0], outputs=Path(chbmit_run.output_root), name=chbmit_run.name, out_dir=out, progress=False), out


def test_detect_finds_a_known_seizure(chbmit_run, heldout, detected):
    _, truth = heldout
    res, out = detected
    assert res["name"] == chbmit_run.name and res["out_dir"] == out
    win = _check_outputs(res, 300.0)
    # an event overlaps each true seizure
    for s, e in truth:
        assert any(a <= e and b >= s for a, b, _ in res["events"]), f"seizure {s}-{e} s missed: events {res['events']}"
    # and the events lie on the seizures: at most a window (10 s) beyond each end (an untrained model, whose
    # probabilities sit near 0.5, flags the whole 300 s as one event)
    outside = sum(b - a for a, b, _ in res["events"]) - sum(
        max(0.0, min(b, e) - max(a, s)) for a, b, _ in res["events"] for s, e in truth
    )
    assert outside <= 20.0, f"{outside:.0f} s of events outside the true seizures {truth}: events {res['events']}"
    # and the seizure windows (labelled as in training: >= 50 % in seizure) rank above the others
    label = seizure_overlap(win["start_s"].to_numpy(), 10.0, truth) >= 0.5
    auroc = window_metrics(label.astype(float), win["seizure_prob"].to_numpy())["auroc"]
    assert auroc > 0.8, f"window AUROC {auroc:.3f} on the held-out recording"


def test_detect_defaults_best_entry_threshold_and_ensemble(chbmit_run, heldout, detected, tmp_path):
    from hbac.config import EnsembleConfig
    from hbac.ensemble import run_ensemble

    edf, _ = heldout
    single = detected[0]  # the member alone (the shared detection: one detect run less, ~1.3 CPU-s)
    outputs = tmp_path / "outputs"  # a copy: the ensemble and the default detect folder are written into it
    shutil.copytree(chbmit_run.output_root, outputs)
    # an ensemble: its weights.json blend of one member must reproduce the member; a given threshold is used
    run_ensemble(EnsembleConfig(name="chbmit_ens_one", members=[chbmit_run.name], output_root=str(outputs)))
    ens = detect(edf, outputs=outputs, name="chbmit_ens_one", out_dir=tmp_path / "ens", threshold=0.7, progress=False)
    assert ens["members"] == {chbmit_run.name: 1.0} and ens["threshold"] == 0.7
    a, b = pd.read_csv(single["windows_csv"]), pd.read_csv(ens["windows_csv"])
    assert np.allclose(a["seizure_prob"], b["seizure_prob"], atol=1e-6)
    # no name: the best complete CHB-MIT entry of the leaderboard; default out_dir under outputs/detect/
    auto = detect(edf, outputs=outputs, progress=False)
    assert auto["name"] in {chbmit_run.name, "chbmit_ens_one"}
    assert auto["out_dir"] == outputs / "detect" / edf.stem and Path(auto["windows_csv"]).exists()
    # the entry's own threshold, chosen on its CV predictions (scores.json), not 0.5 by luck of the training run
    assert auto["threshold"] == default_threshold(outputs / auto["name"])


@pytest.mark.parametrize("clip", ["chb01_03_Seizure.edf", "chb01_03_NonSeizure.edf"])
def test_detect_on_real_clips(chbmit_run, shared_data, clip, tmp_path):
    path = shared_data / "chbmit" / "clips" / clip
    if not path.exists():
        pytest.skip(f"real clip not found: {path}")
    res = detect(path, outputs=Path(chbmit_run.output_root), name=chbmit_run.name, out_dir=tmp_path / clip, progress=False)
    _check_outputs(res, 41.0)  # a real 41 s crop at 256 Hz, resampled to the model's 128 Hz
    assert res["fs"] == 128.0 and res["duration_s"] == pytest.approx(41.0)


def test_preprocessing_and_windows_match_the_training_cache(chbmit_run):
    """detect reads an EDF into exactly the signal and windows the model was trained on."""
    from hbac.cache import open_cache
    from hbac.datasets.chbmit import edf_path

    cache = open_cache(chbmit_run.data, build=False)
    rec = cache.recordings.iloc[5]
    rid = rec["recording_id"]
    x, names = read_preprocessed(edf_path(chbmit_run.data.data_dir, rid), chbmit_run.data, cache.fs)
    assert names == cache.channels
    cached = np.asarray(cache.eeg[rec["eeg_start"] : rec["eeg_start"] + rec["eeg_len"]]).T
    assert x.shape == cached.shape and np.allclose(x, cached, atol=1e-3)
    rows = cache.samples[cache.samples["recording_id"] == rid]
    w = chbmit_run.data.options.windows
    assert np.allclose(window_starts(x.shape[1] / cache.fs, w.window_s, w.stride_s), rows["start_s"].to_numpy())


def test_detect_errors(chbmit_run, tmp_path):
    from hbac.datasets.edf import write_edf
    from hbac.datasets.synthetic.chbmit import CHB01_CHANNELS

    outputs = Path(chbmit_run.output_root)
    with pytest.raises(FileNotFoundError, match="no_such.edf"):
        detect(tmp_path / "no_such.edf", outputs=outputs, name=chbmit_run.name, progress=False)
    # a file without F7 (neither F7-T7 nor anything to derive it from)
    labels = [c for c in CHB01_CHANNELS if "F7" not in c]
    edf = tmp_path / "no_f7.edf"
    write_edf(edf, np.zeros((len(labels), 256 * 20)), 256, labels, datetime(2020, 1, 1))
    with pytest.raises(DataError, match="F7"):
        detect(edf, outputs=outputs, name=chbmit_run.name, out_dir=tmp_path / "x", progress=False)
    with pytest.raises(FileNotFoundError, match="train"):
        detect(edf, outputs=tmp_path / "empty_outputs", progress=False)
    with pytest.raises(FileNotFoundError, match="nope"):
        detect(edf, outputs=outputs, name="nope", progress=False)


@pytest.mark.slow
def test_demo_chbmit_tiny_end_to_end(synth_chbmit, heldout, tmp_path, capsys):
    from hbac.cli import main

    work = tmp_path / "demo"
    # the tiny demo writes the same synthetic CHB-MIT as `synth_chbmit` (4 patients x 3 EDFs x 240 s, seed 0: its
    # banner is checked) and the same held-out EDF as `heldout`: linked into its folder first, the demo reuses them
    # as on a second run (about 3 CPU-s less); it prepares its own cache
    (work / "data").mkdir(parents=True)
    (work / "data" / "chbmit").symlink_to(synth_chbmit, target_is_directory=True)
    (work / "data" / "chbmit_heldout").symlink_to(heldout[0].parents[1], target_is_directory=True)
    assert main(["demo", "--dataset", "chbmit", "--tiny", "--workdir", str(work)]) == 0
    out = capsys.readouterr().out
    assert f"synthetic CHB-MIT data ({CHBMIT_PATIENTS} patients × {CHBMIT_FILES} EDFs × {CHBMIT_FILE_S:.0f} s)" in out, out[:2000]
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6", "done in"):
        assert step in out, step
    det = work / "detect" / "chb01_01"
    for f in ("windows.csv", "events.csv", "timeline.png"):
        assert (det / f).exists(), f
        assert str(det / f) in out, f"the demo does not say where {f} is"
    assert (work / "outputs" / "leaderboard.md").exists()
    assert "chbmit: seizure (event F1, higher is better)" in (work / "outputs" / "leaderboard.md").read_text()
    assert (work / "outputs" / "tiny_chbmit_1d" / "scores.json").exists()
