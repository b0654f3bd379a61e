"""Learning on synthetic HMS: fold-0 KL (all rows and n_votes >= 10) of the tiny 1D and 2D configs.

Writes the demo-sized synthetic set (60 EEGs), prepares it, trains `configs/tiny/hms_1d.yaml` and
`configs/tiny/hms_2d.yaml` on fold 0 and prints KL beside the class prior's on the same rows.

    python benchmarks/learning.py [--workdir /tmp/hbac_learning] [--configs hms_1d.yaml hms_2d.yaml]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hbac.config import load_config
from hbac.datasets.synthetic import write_hms
from hbac.engine.experiment import train_experiment
from hbac.tasks.kl import kl_score

REPO = Path(__file__).resolve().parents[1]


def prior_kl(oof: pd.DataFrame) -> float:
    """KL of predicting the rows' own mean target: the no-skill baseline."""
    t = oof.filter(regex="_vote$").to_numpy()
    return kl_score(t, np.tile(t.mean(axis=0), (len(t), 1)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="/tmp/hbac_learning")
    p.add_argument("--configs", nargs="+", default=["hms_1d.yaml", "hms_2d.yaml"])
    a = p.parse_args()
    work = Path(a.workdir)
    data = work / "data" / "hms"
    if not (data / "train.csv").exists():
        write_hms(data, n_eegs=60, seed=0, n_test=4)
    for name in a.configs:
        cfg = load_config(REPO / "configs" / "tiny" / name,
                          {"data": {"data_dir": str(data), "cache_root": str(work / "cache")}, "output_root": str(work / "outputs")})
        t0 = time.time()
        s = train_experiment(cfg, folds=[0], progress=False)
        oof = pd.read_csv(cfg.output_dir() / "oof.csv")
        hi = oof[oof.n_votes >= 10]
        print(
            f"{name}: fold 0 KL {s['cv']:.4f} (prior {prior_kl(oof):.4f}, {len(oof)} rows); "
            f"n_votes>=10 KL {s['cv_min_votes']:.4f} (prior {prior_kl(hi):.4f}, {len(hi)} rows); {time.time() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
