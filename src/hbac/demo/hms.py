"""`python -m hbac demo`: the whole pipeline on synthetic data, minutes on a CPU."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hbac.cache.build import prepare
from hbac.config import load_config, save_config
from hbac.datasets.synthetic import write_hms
from hbac.demo.common import banner, tiny_configs_dir
from hbac.engine.experiment import train_experiment
from hbac.ensemble import run_ensemble
from hbac.inference.submit import make_submission
from hbac.leaderboard import print_leaderboard
from hbac.tasks import get_task

log = logging.getLogger(__name__)


def _localise(path: Path, workdir: Path, data_dir: Path, tiny: bool) -> Any:
    """Load a tiny experiment config pointed at the demo folder (shrunk further for --tiny), validated once."""
    overrides: dict[str, Any] = {
        "data": {"data_dir": str(data_dir), "cache_root": str(workdir / "inputs" / "cache")},
        "output_root": str(workdir / "outputs"),
    }
    if tiny:  # the smallest run that still has both stages (the tests check outputs, not learning)
        overrides["train"] = {"epochs": 1, "stage2": {"epochs": 1}}
    return load_config(path, overrides)


def run_demo_hms(workdir: Path, tiny: bool = False, progress: bool = True) -> dict[str, Path]:
    """synth → prepare → train two models over the folds → ensemble → leaderboard → submit.

    Returns the paths of the main outputs. Re-running reuses the data and caches.
    """
    t0 = time.time()
    workdir = Path(workdir).resolve()
    data_dir = workdir / "data" / "hms"
    cfg_dir = workdir / "configs"
    outputs = workdir / "outputs"
    n_eegs = 24 if tiny else 60

    banner(f"1/6 synthetic HMS data ({n_eegs} EEGs) → {data_dir}")
    if (data_dir / "train.csv").exists():
        print("   already there, reusing")
    else:
        write_hms(data_dir, n_eegs=n_eegs, seed=0, n_test=4)

    src = tiny_configs_dir()
    exps = []
    for fname in ("hms_2d.yaml", "hms_1d.yaml"):
        cfg = _localise(src / fname, workdir, data_dir, tiny)
        save_config(cfg, cfg_dir / fname)
        exps.append((fname, cfg))

    banner("2/6 prepare the cache (memory-mapped arrays + index + meta.json)")
    cache = prepare(exps[0][1].data, progress=progress)
    print(f"   cache: {cache}")

    for i, (fname, cfg) in enumerate(exps):
        banner(f"3/6 train {cfg.name} ({cfg.model.kind}, {cfg.folds.n_folds} folds)  [{i + 1}/{len(exps)}]")
        scores = train_experiment(cfg, progress=progress)
        print(f"   CV {get_task(scores['task']).headline(scores)} → {cfg.output_dir()}")

    banner("4/6 ensemble (non-negative weights fitted on OOF KL)")
    ens = load_config(src / "ensemble.yaml", {"output_root": str(outputs)})
    save_config(ens, cfg_dir / "ensemble.yaml")
    run_ensemble(ens)

    banner("5/6 local CV leaderboard")
    print_leaderboard(outputs)

    banner("6/6 submission on the synthetic test set (python submit.py)")
    sub_path = workdir / "submission.csv"
    sub = make_submission(data_dir, outputs, ensemble=ens.name, out=sub_path, progress=progress)
    print(sub.head().to_string(index=False))

    paths = {
        "data": data_dir,
        "cache": cache,
        "configs": cfg_dir,
        "outputs": outputs,
        "leaderboard": outputs / "leaderboard.md",
        "submission": sub_path,
    }
    banner(f"done in {time.time() - t0:.0f} s")
    for k, v in paths.items():
        print(f"   {k:>12}: {v}")
    print(
        "\n   Re-run a step yourself, e.g.:\n"
        f"     python -m hbac train {cfg_dir / 'hms_1d.yaml'} --fold 0\n"
        f"     python -m hbac leaderboard --outputs {outputs}\n"
        f"     python submit.py --data-dir {data_dir} --outputs {outputs} --ensemble {ens.name}"
    )
    return paths
