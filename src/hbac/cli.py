"""`python -m hbac <command>`: argument parsing only; the work lives in the modules."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger("hbac")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def cmd_synth(a: argparse.Namespace) -> int:
    from hbac.datasets import synthetic

    if a.dataset == "hms":
        synthetic.write_hms(Path(a.out), n_eegs=a.n_eegs or 60, seed=a.seed, n_test=a.n_test, low_vote_other=a.low_vote_other)
    else:
        synthetic.write_chbmit(Path(a.out), n_patients=a.n_patients, seed=a.seed, n_files=a.n_files, file_s=a.file_s)
    print(f"synthetic {a.dataset} data written to {a.out}")
    return 0


def cmd_prepare(a: argparse.Namespace) -> int:
    from hbac.cache.build import prepare
    from hbac.config import ExperimentConfig, load_config

    cfg = load_config(a.config)
    if isinstance(cfg, ExperimentConfig):
        cfg = cfg.data
    if a.data_dir:
        cfg.data_dir = a.data_dir
    if a.allow_missing:
        cfg.allow_missing = True
    if a.workers is not None:
        cfg.workers = a.workers
    if a.cache_root:
        cfg.cache_root = a.cache_root
    path = prepare(cfg, force=a.force)
    print(f"cache ready: {path}")
    return 0


def _experiment_overrides(a: argparse.Namespace):
    from hbac.config import load_config

    cfg = load_config(a.config)
    if getattr(a, "data_dir", None):
        cfg.data.data_dir = a.data_dir
    if getattr(a, "outputs", None):
        cfg.output_root = a.outputs
    if getattr(a, "cache_root", None):
        cfg.data.cache_root = a.cache_root
    if getattr(a, "allow_missing", False):
        cfg.data.allow_missing = True
    return cfg


def cmd_train(a: argparse.Namespace) -> int:
    from hbac.engine.experiment import train_experiment

    cfg = _experiment_overrides(a)
    folds = [a.fold] if a.fold is not None else None
    result = train_experiment(cfg, folds=folds, resume=a.resume)
    print(f"outputs: {cfg.output_dir()}")
    if result.get("cv") is not None:
        print(f"CV KL: {result['cv']:.4f}   (n_votes >= 10: {result.get('cv_min_votes', float('nan')):.4f})")
    return 0


def cmd_ensemble(a: argparse.Namespace) -> int:
    from hbac.config import load_config
    from hbac.ensemble import run_ensemble

    cfg = load_config(a.config)
    if a.outputs:
        cfg.output_root = a.outputs
    run_ensemble(cfg)
    return 0


def cmd_leaderboard(a: argparse.Namespace) -> int:
    from hbac.leaderboard import print_leaderboard

    print_leaderboard(Path(a.outputs))
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from hbac.tasks.kl import score_oof_file

    res = score_oof_file(Path(a.oof), min_votes=a.min_votes)
    for k, v in res.items():
        print(f"{k:>20}: {v:.5f}" if isinstance(v, float) else f"{k:>20}: {v}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from hbac.demo import run_demo

    run_demo(Path(a.workdir), dataset=a.dataset, tiny=a.tiny)
    return 0


def cmd_detect(a: argparse.Namespace) -> int:
    from hbac.inference.detect import detect

    detect(Path(a.edf), outputs=Path(a.outputs), name=a.name, out_dir=Path(a.out) if a.out else None, threshold=a.threshold,
           explain=a.explain)
    return 0


def cmd_explain(a: argparse.Namespace) -> int:
    from hbac.explain.run import explain

    exp_dir = Path(a.outputs) / a.experiment
    res = explain(exp_dir, fold=a.fold, samples=a.samples, classes=a.classes, out_dir=Path(a.out) if a.out else None,
                  data_dir=a.data_dir, edf=a.edf, actmax_steps=a.actmax_steps, profile_rows=a.profile_rows)
    print(f"{len(res['files'])} figures written to {Path(a.out) if a.out else exp_dir / 'explain'}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from hbac.report import write_report

    path = write_report(Path(a.outputs) / a.name, out=Path(a.out) if a.out else None)
    print(f"report written: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hbac", description="EEG classification pipeline (HMS HBAC, CHB-MIT).")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="write a synthetic dataset in the real layout")
    s.add_argument("dataset", choices=["hms", "chbmit"])
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--n-eegs", type=int, default=None, help="HMS: number of train EEG recordings (default 60)")
    s.add_argument("--n-test", type=int, default=4, help="HMS: number of test EEGs (default 4)")
    s.add_argument("--low-vote-other", type=float, default=0.0, help="HMS: share of low-vote raters who say 'other' whatever they see (default 0)")
    s.add_argument("--n-patients", type=int, default=4, help="CHB-MIT: number of cases (default 4)")
    s.add_argument("--n-files", type=int, default=3, help="CHB-MIT: EDF files per case (default 3)")
    s.add_argument("--file-s", type=float, default=600.0, help="CHB-MIT: seconds per EDF file (default 600)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("prepare", help="build a cache from raw files")
    s.add_argument("config", help="data or experiment config (YAML)")
    s.add_argument("--data-dir", help="raw data folder (overrides the config's data_dir)")
    s.add_argument("--cache-root", help="where caches live (default from config: inputs/cache)")
    s.add_argument("--allow-missing", action="store_true", help="skip rows whose files are missing, and report how many")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.add_argument("--force", action="store_true", help="rebuild even if a matching cache exists")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train folds of an experiment; writes outputs/<experiment>/")
    s.add_argument("config", help="experiment config (YAML)")
    s.add_argument("--fold", type=int, default=None, help="train only this fold (default: all)")
    s.add_argument("--resume", action="store_true", help="continue interrupted folds from last.pt")
    s.add_argument("--data-dir", help="raw data folder (overrides the config)")
    s.add_argument("--cache-root", help="cache folder (overrides the config)")
    s.add_argument("--outputs", help="outputs folder (default: outputs)")
    s.add_argument("--allow-missing", action="store_true", help="skip rows whose files are missing")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("ensemble", help="fit blend weights on OOF predictions, report CV")
    s.add_argument("config", help="ensemble config (YAML)")
    s.add_argument("--outputs", help="outputs folder (default from config)")
    s.set_defaults(func=cmd_ensemble)

    s = sub.add_parser("leaderboard", help="table of every experiment and ensemble, best first")
    s.add_argument("--outputs", default="outputs", help="outputs folder (default: outputs)")
    s.set_defaults(func=cmd_leaderboard)

    s = sub.add_parser("score", help="score an OOF file (KL on all rows and on n_votes >= 10)")
    s.add_argument("oof", help="OOF CSV with <class>_vote and <class>_pred columns")
    s.add_argument("--min-votes", type=int, default=10)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("demo", help="the whole pipeline on synthetic data (minutes on a CPU)")
    s.add_argument("--workdir", default="demo_run", help="folder for data, caches and outputs (default: demo_run)")
    s.add_argument("--dataset", choices=["hms", "chbmit"], default="hms")
    s.add_argument("--tiny", action="store_true", help="smallest sizes (used by the tests)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("detect", help="seizure detection on an EDF file with a trained CHB-MIT experiment or ensemble")
    s.add_argument("edf", help="EDF recording")
    s.add_argument("--outputs", default="outputs", help="outputs folder holding the experiment (default: outputs)")
    s.add_argument("--name", default=None, help="experiment or ensemble name (default: the best CHB-MIT entry)")
    s.add_argument("--out", default=None, help="folder for the CSVs and PNG (default: <outputs>/detect/<edf stem>)")
    s.add_argument("--threshold", type=float, default=None, help="event threshold (default: the experiment's)")
    s.add_argument("--explain", action="store_true", help="add a Grad-CAM strip (seizure class) under the probability timeline")
    s.set_defaults(func=cmd_detect)

    s = sub.add_parser("explain", help="Grad-CAM, optimal samples, activation maximisation, deconvolution of a trained experiment")
    s.add_argument("experiment", help="experiment name (a folder under --outputs)")
    s.add_argument("--fold", type=int, default=None, help="fold to explain (default: the first trained one)")
    s.add_argument("--samples", type=int, default=3, help="optimal samples (and mistakes) per class (default 3)")
    s.add_argument("--classes", nargs="+", default=None, help="only these classes (default: all)")
    s.add_argument("--outputs", default="outputs", help="outputs folder (default: outputs)")
    s.add_argument("--out", default=None, help="figure folder (default: <outputs>/<experiment>/explain)")
    s.add_argument("--data-dir", default=None, help="explain every labelled row of another data folder (same preprocessing)")
    s.add_argument("--edf", default=None, help="explain the windows of one EDF recording (CHB-MIT models)")
    s.add_argument("--actmax-steps", type=int, default=200, help="activation-maximisation steps per class (default 200)")
    s.add_argument("--profile-rows", type=int, default=64, help="rows per class in the mean Grad-CAM profile (default 64)")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("report", help="one self-contained report.html for an experiment or ensemble")
    s.add_argument("name", help="experiment or ensemble name (a folder under --outputs)")
    s.add_argument("--outputs", default="outputs", help="outputs folder (default: outputs)")
    s.add_argument("--out", default=None, help="report path (default: <outputs>/<name>/report.html)")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as e:  # ConfigError and DataError are ValueErrors
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
