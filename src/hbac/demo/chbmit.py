"""`python -m hbac demo --dataset chbmit`: the CHB-MIT seizure-detection pipeline on synthetic data, minutes on a CPU.

synth (CHB-MIT layout: chbNN/chbNN_MM.edf + summaries) → prepare the cache → train the tiny
models over patient-grouped folds → ensemble → leaderboard (with event sensitivity,
precision, FP/24h, AUROC) → `detect` on a held-out synthetic EDF that contains a seizure.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hbac.cache.build import prepare
from hbac.config import load_config, save_config
from hbac.datasets.chbmit import parse_summary
from hbac.datasets.synthetic import write_chbmit
from hbac.demo.common import banner, tiny_configs_dir
from hbac.engine.experiment import train_experiment
from hbac.ensemble import run_ensemble
from hbac.inference.detect import detect
from hbac.leaderboard import print_leaderboard
from hbac.tasks import get_task

log = logging.getLogger(__name__)


# synthetic data: (n_patients, n_files, file_s); n_patients bounds the number of group folds
DATA_SIZES = {"normal": (4, 3, 300.0), "tiny": (4, 3, 240.0)}


HELDOUT_SEED = 1000  # the held-out recording for `detect` is written with another seed: no model saw it


MODELS = {"normal": ("chbmit_1d.yaml", "chbmit_2d.yaml"), "tiny": ("chbmit_1d.yaml",)}


def _localise(path: Path, workdir: Path, data_dir: Path, tiny: bool) -> Any:
    """Load a tiny CHB-MIT experiment config pointed at the demo folder (shrunk further for --tiny), validated once."""
    overrides: dict[str, Any] = {
        "data": {"data_dir": str(data_dir), "cache_root": str(workdir / "inputs" / "cache")},
        "output_root": str(workdir / "outputs"),
    }
    if tiny:  # two patients per fold: half the training runs; 2 epochs (the tests check outputs, not learning)
        overrides["folds"] = {"n_folds": 2}
        overrides["train"] = {"epochs": 2}
    return load_config(path, overrides)


def _write_data(data_dir: Path, n_patients: int, n_files: int, file_s: float) -> None:

    if (data_dir / "chb01" / "chb01-summary.txt").exists():
        print("   already there, reusing")
        return
    write_chbmit(data_dir, n_patients=n_patients, seed=0, n_files=n_files, file_s=file_s)


def heldout_recording(workdir: Path, file_s: float = 300.0) -> tuple[Path, list[tuple[float, float]]]:
    """A synthetic EDF no demo model was trained on (another seed), and its true seizures [(start_s, end_s)]."""

    root = workdir / "data" / "chbmit_heldout"
    summary = root / "chb01" / "chb01-summary.txt"
    if not summary.exists():
        write_chbmit(root, n_patients=1, seed=HELDOUT_SEED, n_files=1, file_s=file_s)  # one file: always ≥ 1 seizure
    entry = parse_summary(summary)[0]
    return root / "chb01" / entry.file_name, list(entry.seizures)


def run_demo_chbmit(workdir: Path, tiny: bool = False, progress: bool = True) -> dict[str, Path]:
    """synth → prepare → train the tiny CHB-MIT model(s) over the folds → ensemble → leaderboard → detect.

    Returns the paths of the main outputs. Re-running reuses the data and caches.
    """

    t0 = time.time()
    size = "tiny" if tiny else "normal"
    workdir = Path(workdir).resolve()
    data_dir = workdir / "data" / "chbmit"
    cfg_dir = workdir / "configs"
    outputs = workdir / "outputs"
    n_patients, n_files, file_s = DATA_SIZES[size]

    banner(f"1/6 synthetic CHB-MIT data ({n_patients} patients × {n_files} EDFs × {file_s:.0f} s) → {data_dir}")
    _write_data(data_dir, n_patients, n_files, file_s)

    src = tiny_configs_dir()
    exps = []
    for fname in MODELS[size]:
        cfg = _localise(src / fname, workdir, data_dir, tiny)
        save_config(cfg, cfg_dir / fname)
        exps.append(cfg)

    banner("2/6 prepare the cache (18-pair banana, 60 Hz notch, 0.5-40 Hz, 10 s windows every 5 s)")
    cache = prepare(exps[0].data, progress=progress)
    print(f"   cache: {cache}")

    for i, cfg in enumerate(exps):
        banner(f"3/6 train {cfg.name} ({cfg.model.kind}, {cfg.train.loss} loss, {cfg.folds.n_folds} patient-grouped folds)"
                f"  [{i + 1}/{len(exps)}]")
        scores = train_experiment(cfg, progress=progress)
        print(f"   CV {get_task(scores['task']).headline(scores)} → {cfg.output_dir()}")

    ens_path = None
    if len(exps) >= 2:
        banner("4/6 ensemble (non-negative weights fitted on the OOF predictions)")
        ens = load_config(src / "chbmit_ensemble.yaml", {"output_root": str(outputs), "members": [c.name for c in exps]})
        ens_path = cfg_dir / "chbmit_ensemble.yaml"
        save_config(ens, ens_path)
        run_ensemble(ens)
    else:
        banner("4/6 ensemble: skipped (one model)")

    banner("5/6 local CV leaderboard")
    print_leaderboard(outputs)

    edf, truth = heldout_recording(workdir)
    banner(f"6/6 detect seizures in a held-out EDF ({edf.name}, another seed) with the best CHB-MIT entry")
    res = detect(edf, outputs=outputs, out_dir=workdir / "detect" / edf.stem, progress=progress)
    print(f"   model: {res['name']}, threshold {res['threshold']:.2f}, {res['n_windows']} windows over {res['duration_s']:.0f} s")
    print("   true seizures:     " + (", ".join(f"{s:.0f}–{e:.0f} s" for s, e in truth) or "none"))
    print("   detected events:   " + (", ".join(f"{s:.0f}–{e:.0f} s (peak {p:.2f})" for s, e, p in res["events"]) or "none"))

    paths = {
        "data": data_dir,
        "cache": cache,
        "configs": cfg_dir,
        "outputs": outputs,
        "leaderboard": outputs / "leaderboard.md",
        "detect_edf": edf,
        "windows": res["windows_csv"],
        "events": res["events_csv"],
        "timeline": res["timeline_png"],
    }
    banner(f"done in {time.time() - t0:.0f} s")
    for k, v in paths.items():
        print(f"   {k:>12}: {v}")
    print(
        "\n   Re-run a step yourself, e.g.:\n"
        f"     python -m hbac train {cfg_dir / MODELS[size][0]} --fold 0\n"
        f"     python -m hbac leaderboard --outputs {outputs}\n"
        f"     python -m hbac detect {edf} --outputs {outputs}" + (f" --name {load_config(ens_path).name}" if ens_path else "")
    )
    return paths
