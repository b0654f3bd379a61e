"""`python -m hbac <command>`: argument parsing only; the work lives in the modules.

Each command imports its module inside its `cmd_*` function, on purpose: the package's modules pull
in torch, timm, polars and the dataset registry (seconds and hundreds of MB), and `--help`, a bad
flag or a config error must answer without them (tests/unit/cli/test_help_is_light.py).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from hbac.procs import Terminated  # stdlib-only module: keeps --help fast

log = logging.getLogger("hbac")

# printed as one `error:` line (exit 2): ConfigError, DataError, CheckpointError are ValueErrors; CacheError,
# DiskFullError, PermissionError, FileNotFoundError are OSErrors
USER_ERRORS = (ValueError, OSError, KeyError)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def cmd_synth(a: argparse.Namespace) -> int:
    from hbac.datasets import SynthOptions, synthetic_datasets, write_synthetic

    if a.list or a.dataset is None:
        names = synthetic_datasets()
        if a.list:
            print("\n".join(names))
            return 0
        raise ValueError(f"synth: name a dataset (registered with a synthetic writer: {', '.join(names)})")
    if a.out is None:
        raise ValueError("synth: --out DIR is required")
    opts = SynthOptions(seed=a.seed, n_patients=a.n_patients, n_files=a.n_files, file_s=a.file_s, n_eegs=a.n_eegs,
                        n_test=a.n_test, low_vote_other=a.low_vote_other)
    write_synthetic(a.dataset, Path(a.out), opts)
    print(f"synthetic {a.dataset} data written to {a.out}")
    return 0


def add_config_args(s: argparse.ArgumentParser, what: str = "config (YAML)") -> None:
    """The CONFIG positional and the repeatable `--set key.path=value` of every command that takes a config."""
    s.add_argument("config", help=what)
    s.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override a config value (repeatable; YAML value, validated like the file; applied after the "
        "other flags), e.g. --set train.epochs=3 --set data.eeg.bandpass=[0.5,40] --set model.pretrained_path=null",
    )


def load_cli_config(
    a: argparse.Namespace, expect: Sequence[str], overrides: Optional[dict] = None, data_overrides: Optional[dict] = None
) -> Any:
    """Load `a.config` with the command's flag overrides, then `a.sets` on top; validated once, never mutated after."""
    from hbac.config import (  # lazy: config pulls in numpy/pandas via hbac.io
        deep_update,
        load_config,
        parse_sets,
    )

    merged = deep_update(overrides or {}, parse_sets(getattr(a, "sets", [])))
    return load_config(a.config, merged, data_overrides=data_overrides, expect=expect)


def _data_flags(a: argparse.Namespace) -> dict[str, Any]:
    """--data-dir / --cache-root / --allow-missing / --workers → overrides of the cache settings."""
    d: dict[str, Any] = {}
    if getattr(a, "data_dir", None):
        d["data_dir"] = a.data_dir
    if getattr(a, "cache_root", None):
        d["cache_root"] = a.cache_root
    if getattr(a, "allow_missing", False):
        d["allow_missing"] = True
    if getattr(a, "workers", None) is not None:
        d["workers"] = a.workers
    return d


def _output_flags(a: argparse.Namespace) -> dict[str, Any]:
    """--outputs → the output_root override."""
    return {"output_root": a.outputs} if getattr(a, "outputs", None) else {}


def cmd_prepare(a: argparse.Namespace) -> int:
    cfg = load_cli_config(a, ("data", "experiment"), data_overrides=_data_flags(a))  # before the heavy imports: config errors come fast
    from hbac.cache.build import prepare
    from hbac.config import ExperimentConfig

    path = prepare(cfg.data if isinstance(cfg, ExperimentConfig) else cfg, force=a.force)
    print(f"cache ready: {path}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    cfg = load_cli_config(a, ("experiment",), overrides=_output_flags(a), data_overrides=_data_flags(a))  # before torch is imported
    from hbac.engine.experiment import nothing_to_resume, rescore_finished, train_experiment  # torch-free until a fold trains
    from hbac.procs import dist_env
    from hbac.tasks import get_task

    folds = [a.fold] if a.fold is not None else None
    if (a.resume or a.gpus) and not a.overwrite and nothing_to_resume(cfg, folds):
        # a restarted session over finished folds: the scores again in ~2 s (no torch, no devices asked; 6-7 s before)
        result = rescore_finished(cfg, folds)
        print(f"outputs: {cfg.output_dir()} (every fold asked for had finished: nothing trained)")
        if result.get("cv") is not None:
            print(f"CV {get_task(result['task']).headline(result)}")
        return 0
    from hbac.engine.runtime import auto_devices, close_distributed

    if a.gpus and dist_env().distributed:
        raise ValueError("train: --gpus (a fold per device) and torchrun (one fold over several devices) do not combine; use one")
    if a.gpus == "auto":  # every visible GPU when there are two or more, else the folds one after the other here
        a.gpus = auto_devices()
    if a.gpus:
        _train_parallel(a, cfg, folds)
        folds = []  # every fold trained by the children: only collect the OOF file and scores
    try:
        result = train_experiment(cfg, folds=folds, resume=a.resume or bool(a.gpus), overwrite=a.overwrite and not a.gpus)
    finally:
        close_distributed()  # torchrun: leave the process group (no-op otherwise)
    if dist_env().rank == 0:  # the group is closed: ask the environment
        print(f"outputs: {cfg.output_dir()}")
    if result.get("cv") is not None:
        print(f"CV {get_task(result['task']).headline(result)}")
    return 0


def _train_parallel(a: argparse.Namespace, cfg: Any, folds: Optional[list[int]]) -> None:
    """`train --gpus 0,1`: build the cache once, then one `train --fold K` child per device (hbac.engine.parallel)."""
    from hbac.cache.build import prepare
    from hbac.engine.parallel import parse_devices, run_folds

    devices = parse_devices(a.gpus)
    args = [a.config] + [x for s in a.sets for x in ("--set", s)]
    for flag, value in (("--data-dir", a.data_dir), ("--cache-root", a.cache_root), ("--outputs", a.outputs)):
        args += [flag, value] if value else []
    args += ["--allow-missing"] if a.allow_missing else []
    if a.overwrite:  # once, here: a child deleting the folder would delete its siblings' folds
        shutil.rmtree(cfg.output_dir(), ignore_errors=True)
    prepare(cfg.data)
    ran = run_folds(args, folds if folds is not None else list(range(cfg.folds.n_folds)), devices)
    log.info("folds by device: %s", ", ".join(f"{k}→{d}" for k, d in sorted(ran.items())))


def cmd_ensemble(a: argparse.Namespace) -> int:
    cfg = load_cli_config(a, ("ensemble",), overrides=_output_flags(a))
    from hbac.ensemble import run_ensemble

    run_ensemble(cfg)
    return 0


def cmd_leaderboard(a: argparse.Namespace) -> int:
    from hbac.leaderboard import print_leaderboard

    print_leaderboard(Path(a.outputs))
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from hbac.tasks.registry import score_oof_file

    task, res = score_oof_file(Path(a.oof), min_votes=a.min_votes, threshold=a.threshold)
    print(f"{'task':>20}: {task.title()}")
    print("\n".join(task.report_lines(res)))
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from hbac.demo import run_demo

    run_demo(Path(a.workdir), dataset=a.dataset, tiny=a.tiny)
    return 0


def cmd_detect(a: argparse.Namespace) -> int:
    from hbac.inference.detect import detect

    detect(Path(a.edf), outputs=Path(a.outputs), name=a.name, out_dir=Path(a.out) if a.out else None, threshold=a.threshold,
           onnx=Path(a.onnx) if a.onnx else None, explain=a.explain)
    return 0


def _intervals(spec: Optional[str]) -> list[tuple[float, float]]:
    """'10:50,300:340' → [(10.0, 50.0), (300.0, 340.0)]."""
    out = []
    for part in (spec or "").split(","):
        if part.strip():
            a, _, b = part.partition(":")
            try:
                out.append((float(a), float(b)))
            except ValueError:
                raise ValueError(f"--seizures: {part!r} is not START:END in seconds") from None
    return out


def cmd_stream(a: argparse.Namespace) -> int:
    from hbac.inference.stream import stream

    r = stream(Path(a.edf), outputs=Path(a.outputs), name=a.name, onnx=Path(a.onnx) if a.onnx else None, speed=a.speed,
               seizures=_intervals(a.seizures), threshold=a.threshold, out=Path(a.out) if a.out else None)
    print(f"{len(r['alarms_s'])} alarm(s) at {', '.join(f'{t:.1f} s' for t in r['alarms_s']) or '-'}; "
          f"{r['cpu_s_per_eeg_s'] * 1000:.2f} ms CPU per s of EEG")
    for (on, off), la in zip(r["seizures"], r["latency_s"]):
        print(f"seizure {on:.1f}-{off:.1f} s: " + ("missed" if la is None else f"detection latency {la:+.1f} s"))
    return 0


def cmd_tune(a: argparse.Namespace) -> int:
    from hbac.engine.tune import tune

    r = tune(a.config, trials=a.trials, storage=a.storage, progress=not a.quiet)
    print(f"study {r['study']}: {r['n_trials']} trial(s), {r['n_pruned']} pruned; first {r['first_value']}, "
          f"best {r['best_value']} (trial {r['best_trial']}) with {r['best_params']}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from hbac.inference.export import export_onnx

    if not a.onnx:
        raise ValueError("export: choose a format (--onnx)")
    exp = Path(a.experiment) if Path(a.experiment).is_dir() else Path(a.outputs) / a.experiment
    r = export_onnx(exp, out_dir=Path(a.out) if a.out else None, int8=a.int8)
    for kind in ("fp32", "int8"):
        if kind in r:
            f = r[kind]
            print(f"{kind}: {f['size_bytes'] / 1024:.1f} kB, max |Δp| vs torch {f['max_abs_diff']:.2e}, "
                  f"{f['latency_ms_per_window']:.3f} ms/window (CPU, 1 thread)")
    print(f"exported {r['onnx']}")
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


def cmd_weights(a: argparse.Namespace) -> int:
    from hbac.models.weights import config_backbones, default_configs, fetch_weights

    names = list(a.backbone or []) + config_backbones(a.configs or ([] if a.backbone else default_configs()))
    if not names:
        raise ValueError("no 2D backbone to fetch: give experiment configs with a 2d / multimodal model, or --backbone NAME")
    for path in fetch_weights(list(dict.fromkeys(names)), Path(a.out), force=a.force):
        print(f"weights: {path}")
    return 0


def cmd_kaggle(a: argparse.Namespace) -> int:
    import hbac.kaggle as kg  # lazy: pulls in the cache builder and the models (torch)

    if a.kaggle_command == "download":
        kg.download(a.competition, Path(a.to or f"inputs/{a.competition}"), force=a.force, dry_run=a.dry_run, keep_zip=a.keep_zip)
    elif a.kaggle_command == "bundle":
        kg.bundle(Path(a.outputs), a.experiments, Path(a.out), dataset_id=a.id, title=a.title, deps=not a.no_deps,
                  dry_run=a.dry_run)
    elif a.kaggle_command == "upload":
        kg.upload(Path(a.bundle_dir), notes=a.notes, dry_run=a.dry_run)
    elif a.kaggle_command == "push-notebook":
        kg.push_notebook(a.name, dataset=a.dataset, kernel_id=a.id, competition=a.competition, notebooks=Path(a.notebooks),
                         out=Path(a.out) if a.out else None, dry_run=a.dry_run)
    else:
        kg.status(a.competition, n=a.n, dry_run=a.dry_run)
    return 0


def _add_kaggle_parser(sub: Any) -> None:
    """`kaggle download|bundle|upload|push-notebook|status`, each with --dry-run."""
    k = sub.add_parser("kaggle", help="the Kaggle loop: download, bundle, upload, push-notebook, status (kaggle package)")
    ks = k.add_subparsers(dest="kaggle_command", required=True, metavar="STEP")
    s = ks.add_parser("download", help="fetch and unzip the competition data, then check its layout")
    s.add_argument("competition", nargs="?", default="hms", help="'hms' or a competition slug (default hms)")
    s.add_argument("--to", default=None, help="folder (default inputs/<competition>)")
    s.add_argument("--force", action="store_true", help="download again even when complete")
    s.add_argument("--keep-zip", action="store_true", help="keep the zip after unpacking it")
    s = ks.add_parser("bundle", help="a folder ready to be a Kaggle dataset: wheels, checkpoints, configs, timm weights")
    s.add_argument("--experiments", nargs="+", default=None, help="experiments/ensembles (default: the best HMS entry)")
    s.add_argument("--outputs", default="outputs", help="outputs folder (default: outputs)")
    s.add_argument("--out", default="kaggle_bundle", help="bundle folder (default: kaggle_bundle)")
    s.add_argument("--id", default=None, help="dataset USER/SLUG (default: $KAGGLE_USERNAME/hbac-bundle)")
    s.add_argument("--title", default="hbac bundle", help="dataset title")
    s.add_argument("--no-deps", action="store_true", help="only the hbac wheel (the image has every dependency)")
    s = ks.add_parser("upload", help="create the bundle's dataset, or add a version")
    s.add_argument("bundle_dir", help="folder written by `kaggle bundle`")
    s.add_argument("--notes", default="new version", help="version notes")
    s = ks.add_parser("push-notebook", help="write kernel-metadata.json (GPU on, internet off) and push a notebook")
    s.add_argument("name", help="notebook name under notebooks/, e.g. hms_submit")
    s.add_argument("--dataset", default=None, help="bundle dataset USER/SLUG (default: $KAGGLE_USERNAME/hbac-bundle)")
    s.add_argument("--id", default=None, help="kernel USER/SLUG (default: $KAGGLE_USERNAME/<name>)")
    s.add_argument("--competition", default="hms")
    s.add_argument("--notebooks", default="notebooks", help="folder of the .ipynb files")
    s.add_argument("--out", default=None, help="staging folder (default build/kaggle/<name>)")
    s = ks.add_parser("status", help="the latest submissions and their scores")
    s.add_argument("competition", nargs="?", default="hms")
    s.add_argument("-n", type=int, default=10, help="how many (default 10)")
    for s in ks.choices.values():
        s.add_argument("--dry-run", action="store_true", help="print what would be sent; no network")
    k.set_defaults(func=cmd_kaggle)


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    """Subcommands synth, prepare, train: data and training."""
    s = sub.add_parser("synth", help="write a synthetic dataset in the real layout")
    s.add_argument("dataset", nargs="?", help="a registered dataset whose adapter declares a synthetic writer (--list)")
    s.add_argument("--list", action="store_true", help="print the datasets that have a synthetic writer")
    s.add_argument("--out", help="output folder (required to write)")
    s.add_argument("--n-eegs", type=int, default=None, help="HMS: number of train EEG recordings (default 60)")
    s.add_argument("--n-test", type=int, default=4, help="HMS: number of test EEGs (default 4)")
    s.add_argument("--low-vote-other", type=float, default=0.0, help="HMS: share of low-vote raters who say 'other' whatever they see (default 0)")
    s.add_argument("--n-patients", type=int, default=4, help="CHB-MIT: number of cases; BIDS/TUSZ: subjects (default 4)")
    s.add_argument("--n-files", type=int, default=3, help="CHB-MIT/BIDS/TUSZ: EDF files per case (default 3)")
    s.add_argument("--file-s", type=float, default=600.0, help="CHB-MIT/BIDS/TUSZ: seconds per EDF file (default 600)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("prepare", help="build a cache from raw files")
    add_config_args(s, "data or experiment config (YAML)")
    s.add_argument("--data-dir", help="raw data folder (overrides the config's data_dir)")
    s.add_argument("--cache-root", help="where caches live (default from config: inputs/cache)")
    s.add_argument("--allow-missing", action="store_true", help="skip rows whose files are missing, and report how many")
    s.add_argument("--workers", type=int, default=None, help="workers (default: all cores): threads when the reads release the GIL (HMS), else processes")
    s.add_argument("--force", action="store_true", help="rebuild even if a matching cache exists")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train folds of an experiment; writes outputs/<experiment>/")
    add_config_args(s, "experiment config (YAML)")
    s.add_argument("--fold", type=int, default=None, help="train only this fold (default: all)")
    s.add_argument("--resume", action="store_true", help="continue interrupted folds from last.pt")
    s.add_argument("--gpus", default=None, metavar="0,1",
                   help="train folds in parallel, one process per device (CUDA_VISIBLE_DEVICES; 'cpu' entries run on the CPU); "
                        "'auto': every visible GPU when there are two or more, else the folds one after the other")
    s.add_argument("--overwrite", action="store_true", help="delete the experiment's folder first (needed to retrain it with a changed config)")
    s.add_argument("--data-dir", help="raw data folder (overrides the config)")
    s.add_argument("--cache-root", help="cache folder (overrides the config)")
    s.add_argument("--outputs", help="outputs folder (default: outputs)")
    s.add_argument("--allow-missing", action="store_true", help="skip rows whose files are missing")
    s.set_defaults(func=cmd_train)


def _add_result_commands(sub: argparse._SubParsersAction) -> None:
    """Subcommands ensemble, leaderboard, score, demo: results."""
    s = sub.add_parser("ensemble", help="fit blend weights on OOF predictions, report CV")
    add_config_args(s, "ensemble config (YAML)")
    s.add_argument("--outputs", help="outputs folder (default from config)")
    s.set_defaults(func=cmd_ensemble)

    s = sub.add_parser("leaderboard", help="table of every experiment and ensemble, best first")
    s.add_argument("--outputs", default="outputs", help="outputs folder (default: outputs)")
    s.set_defaults(func=cmd_leaderboard)

    s = sub.add_parser("score", help="score an OOF file by its task's metrics (HMS: KL on all rows and on n_votes >= 10; "
                                     "seizure: event F1, AUROC, sensitivity, precision, FP/24h)")
    s.add_argument("oof", help="OOF CSV with <class>_vote and <class>_pred columns")
    s.add_argument("--min-votes", type=int, default=10, help="HMS: the n_votes subset (default 10)")
    s.add_argument("--threshold", type=float, default=None, help="seizure: event threshold (default: the event-F1-best)")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("demo", help="the whole pipeline on synthetic data (minutes on a CPU)")
    s.add_argument("--workdir", default="demo_run", help="folder for data, caches and outputs (default: demo_run)")
    s.add_argument("--dataset", choices=["hms", "chbmit"], default="hms")
    s.add_argument("--tiny", action="store_true", help="smallest sizes (used by the tests)")
    s.set_defaults(func=cmd_demo)


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    """Subcommands detect, explain, report, weights: using and inspecting models."""
    s = sub.add_parser("detect", help="seizure detection on an EDF file with a trained CHB-MIT experiment or ensemble")
    s.add_argument("edf", help="EDF recording")
    s.add_argument("--outputs", default="outputs", help="outputs folder holding the experiment (default: outputs)")
    s.add_argument("--name", default=None, help="experiment or ensemble name (default: the best CHB-MIT entry)")
    s.add_argument("--out", default=None, help="folder for the CSVs and PNG (default: <outputs>/detect/<edf stem>)")
    s.add_argument("--threshold", type=float, default=None, help="event threshold (default: the experiment's)")
    s.add_argument("--explain", action="store_true", help="add a Grad-CAM strip (seizure class) under the probability timeline")
    s.add_argument("--onnx", default=None, help="score windows with an exported model.onnx (onnxruntime, no torch model)")
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
    s = sub.add_parser("weights", help="save the ImageNet weights of the configs' 2D backbones to a local folder (needs a network)")
    s.add_argument("action", choices=["fetch"])
    s.add_argument("configs", nargs="*", help="experiment configs (default: configs/*.yaml)")
    s.add_argument("--backbone", action="append", help="a timm model name to fetch as well (repeatable)")
    s.add_argument("--out", default="inputs/weights", help="folder for <backbone>.pth (default: inputs/weights)")
    s.add_argument("--force", action="store_true", help="download again even when the file exists")
    s.set_defaults(func=cmd_weights)


def _add_seizure_tools(sub: argparse._SubParsersAction) -> None:
    """Subcommands tune, stream, export: search, live detection, deployment."""
    s = sub.add_parser("tune", help="Optuna search over an experiment config (search space in a tune YAML)")
    s.add_argument("config", help="tune file (YAML): experiment, folds, space, … (see hbac.engine.tune)")
    s.add_argument("--trials", type=int, required=True, help="total trials of the study (re-running resumes it)")
    s.add_argument("--storage", default=None, help="Optuna RDB URL or .journal file (default: SQLite in the study folder)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("stream", help="replay an EDF as a live feed: online alarms, detection latency, CPU cost")
    s.add_argument("edf", help="EDF recording")
    s.add_argument("--outputs", default="outputs", help="outputs folder holding the experiment (default: outputs)")
    s.add_argument("--name", default=None, help="experiment name (default: the best CHB-MIT entry)")
    s.add_argument("--onnx", default=None, help="score with an exported model.onnx instead of the checkpoints")
    s.add_argument("--speed", type=float, default=1.0, help="replay speed × real time; 0 = as fast as possible")
    s.add_argument("--seizures", default=None, help="reference seizures START:END[,START:END] (s) for latencies")
    s.add_argument("--threshold", type=float, default=None, help="alarm threshold (default: the experiment's)")
    s.add_argument("--out", default=None, help="write the report (JSON) here")
    s.set_defaults(func=cmd_stream)

    s = sub.add_parser("export", help="export an experiment's folds as one ONNX graph, with parity and latency checks")
    s.add_argument("experiment", help="experiment folder, or its name under --outputs")
    s.add_argument("--outputs", default="outputs", help="outputs folder (default: outputs)")
    s.add_argument("--onnx", action="store_true", help="export to ONNX (the only format)")
    s.add_argument("--int8", action="store_true", help="also write a dynamically int8-quantised copy")
    s.add_argument("--out", default=None, help="folder for model.onnx (default: <experiment>/export)")
    s.set_defaults(func=cmd_export)
    _add_kaggle_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hbac", description="EEG classification pipeline (HMS HBAC, CHB-MIT).")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_data_commands(sub)
    _add_result_commands(sub)
    _add_model_commands(sub)
    _add_seizure_tools(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM where a command turns it into hbac.procs.Terminated
        if args.verbose:
            raise
        print(f"interrupted: {str(e) or 'Ctrl-C'} (temp files removed; run the command again to continue)", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


def build_submit_parser() -> argparse.ArgumentParser:
    """Arguments of `python submit.py` (parsed before anything heavy is imported, so --help is instant)."""
    p = argparse.ArgumentParser(prog="python submit.py", description="Offline inference on test.csv → submission.csv.")
    p.add_argument("--data-dir", default=None, help="competition folder (default: the Kaggle input folder when present, else inputs/hms)")
    p.add_argument("--outputs", default="outputs", help="folder of trained experiments (default: outputs)")
    p.add_argument("--ensemble", default=None, help="ensemble to use (default: the best HMS entry on the leaderboard)")
    p.add_argument("--experiment", default=None, help="use one experiment instead of an ensemble")
    p.add_argument("--out", default="submission.csv", help="output file (default: submission.csv)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--profile", action="store_true",
                   help="print where the time went (imports, cache, model load, data, forward, write) and the share outside the models' forward passes")
    p.add_argument("--allow-prior-fallback", action="store_true",
                   help="predict the class prior for test EEGs that cannot be read (default: stop with an error naming them)")
    return p


def submit_main(argv: Optional[Sequence[str]] = None) -> int:
    """`python submit.py`: parse, then import the inference code and write the submission."""
    t0 = time.perf_counter()
    a = build_submit_parser().parse_args(argv)
    _setup_logging(False)
    try:
        from hbac.inference.submit import (
            make_submission,  # torch and the models: imported only to run
        )

        timings: dict[str, float] = {"imports": time.perf_counter() - t0}
        make_submission(a.data_dir, Path(a.outputs), a.ensemble, a.experiment, Path(a.out), a.batch_size, timings=timings,
                        allow_prior_fallback=a.allow_prior_fallback)
    except USER_ERRORS as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    total = time.perf_counter() - t0
    split = ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f} %)" for k, v in timings.items())
    log.info("submit.py took %.2f s: %s; other %.2f s", total, split, total - sum(timings.values()))
    if a.profile:
        print(f"time split (total {total:.2f} s):")
        for k, v in list(timings.items()) + [("other", total - sum(timings.values()))]:
            print(f"  {k:>10}: {v:7.2f} s  {100 * v / total:5.1f} %")
        fwd, imp = timings.get("forward", 0.0), timings.get("imports", 0.0)
        print(f"  outside the forward passes: {100 * (1 - fwd / total):.1f} % of the whole, "
              f"{100 * (1 - fwd / max(total - imp, 1e-9)):.1f} % without imports")
    print(f"submission written to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
