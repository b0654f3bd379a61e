"""`python -m hbac tune TUNE.yaml --trials N [--storage URL]`: Optuna search over an experiment's config.

A tune file names a base experiment and a search space over dotted config keys:

    experiment: ../tiny/chbmit_1d.yaml     # relative to the tune file
    folds: [0]                             # folds trained per trial (objective: their mean)
    sampler: tpe                           # tpe | random
    pruner: median                         # median | none (prunes on per-epoch validation)
    seed: 0
    start: {train.lr: 1.0e-3}              # optional first trial (e.g. the base config's values)
    set: {train.epochs: 4}                 # optional fixed overrides for every trial (dotted keys)
    objective: val_score                   # val_score | auroc | auprc | event_f1 (seizure data)
    space:
      train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      model.drop_rate: {low: 0.0, high: 0.5}
      model.oned.hidden: {low: 16, high: 64, step: 16, int: true}
      train.batch_size: {choices: [16, 32]}

Each trial is the base experiment with the sampled values (validated like any config), named
`<experiment>_t<trial>` under `<output_root>/tune/<study>/`. The objective (mean over `folds`):
`val_score`, the best validation score the trainer selects checkpoints by (`fold.json` →
best_score, the task's primary metric in its direction: HMS KL minimised, seizure event F1
maximised; every epoch's score is reported to
Optuna for pruning), or for seizure data a window/event metric of the folds' out-of-fold
predictions (`auroc`, `auprc`, `event_f1` by `tasks.events.seizure_scores`; maximised; not
pruned, as it exists only once a fold is done). Balanced or focal training makes the KL a poor
guide for seizure detectors, hence the metrics. `--trials N` is the study's
total: re-running resumes the study from its storage and runs only what is missing, and several
processes (or machines, with an RDB URL) sharing one storage split the trials between them.
Storage: an Optuna RDB URL (`sqlite:///study.db`, `postgresql://…`) or a `.journal` file path
(Optuna's journal file storage); default `sqlite:///<output_root>/tune/<study>/study.db`.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional

import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from hbac.config import ExperimentConfig, load_config, read_yaml, with_overrides
from hbac.engine.fold import train_fold
from hbac.errors import ConfigError
from hbac.io import atomic_write_csv, atomic_write_json, read_json
from hbac.tasks import task_for
from hbac.tasks.events import seizure_scores

log = logging.getLogger(__name__)

TUNE_KEYS = {"experiment", "folds", "sampler", "pruner", "seed", "start", "space", "study", "set", "objective"}
# objective → (direction, pruned per epoch); val_score: the trainer's checkpoint-selection score, in the task's direction (`_direction`)
OBJECTIVES = {"val_score": ("minimize", True), "auroc": ("maximize", False), "auprc": ("maximize", False),
              "event_f1": ("maximize", False)}
PARAM_KEYS = {"low", "high", "log", "step", "int", "choices"}


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """{'train.lr': 1e-3} → {'train': {'lr': 1e-3}}."""
    out: dict[str, Any] = {}
    for key, v in flat.items():
        d = out
        *parents, leaf = key.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = v
    return out


def load_tune(path: str | Path) -> dict[str, Any]:
    """Read and validate a tune file (ConfigError naming the bad key); `experiment` resolved to a path."""
    path = Path(path)
    d = read_yaml(path)
    unknown = sorted(set(d) - TUNE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} (allowed: {sorted(TUNE_KEYS)})")
    if "experiment" not in d or "space" not in d or not isinstance(d["space"], dict) or not d["space"]:
        raise ConfigError(f"{path}: needs `experiment:` and a non-empty `space:` mapping")
    for key, spec in d["space"].items():
        if not isinstance(spec, dict) or not (set(spec) <= PARAM_KEYS):
            raise ConfigError(f"{path}: space.{key}: a mapping of {sorted(PARAM_KEYS)}, got {spec!r}")
        if "choices" not in spec and not ("low" in spec and "high" in spec):
            raise ConfigError(f"{path}: space.{key}: give `choices` or `low` and `high`")
    d["experiment"] = (path.parent / d["experiment"]).resolve()
    d.setdefault("folds", [0])
    d.setdefault("sampler", "tpe")
    d.setdefault("pruner", "median")
    d.setdefault("seed", 0)
    d.setdefault("start", {})
    d.setdefault("set", {})
    d.setdefault("objective", "val_score")
    if d["objective"] not in OBJECTIVES:
        raise ConfigError(f"{path}: objective: {d['objective']!r} is not one of {sorted(OBJECTIVES)}")
    if d["sampler"] not in ("tpe", "random") or d["pruner"] not in ("median", "none"):
        raise ConfigError(f"{path}: sampler must be tpe|random and pruner median|none")
    base = load_config(d["experiment"], overrides=_nested(d["set"]))
    d.setdefault("study", f"{base.name}_tune")
    # every key of the space must be a valid config key: try its first value
    first = {k: (s["choices"][0] if "choices" in s else s["low"]) for k, s in d["space"].items()}
    try:
        load_config(d["experiment"], overrides=_nested({**d["set"], **first, **d["start"]}))
    except ConfigError as e:
        raise ConfigError(f"{path}: space: {e}") from None
    return d


def suggest(trial: optuna.Trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sample one value per dotted key of the space."""
    out: dict[str, Any] = {}
    for key, s in space.items():
        if "choices" in s:
            out[key] = trial.suggest_categorical(key, list(s["choices"]))
        elif s.get("int"):
            out[key] = trial.suggest_int(key, int(s["low"]), int(s["high"]), step=int(s.get("step", 1)),
                                         log=bool(s.get("log", False)))
        else:
            out[key] = trial.suggest_float(key, float(s["low"]), float(s["high"]), log=bool(s.get("log", False)),
                                           step=s.get("step"))
    return out


def storage_for(url: Optional[str], out: Path) -> Any:
    """An Optuna storage: RDB URL as given, a `.journal`/`.log` path as a journal file, default SQLite in `out`."""
    if url is None:
        out.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(out / 'study.db').resolve()}"
    if "://" in url:
        return url
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(url)))


def _direction(tune: dict[str, Any], cfg: ExperimentConfig) -> str:
    """The study's direction: the objective's, and for `val_score` the task's (KL minimised, event F1 maximised)."""
    if tune["objective"] == "val_score":
        return "minimize" if task_for(cfg).direction == "min" else "maximize"
    return OBJECTIVES[tune["objective"]][0]


def _objective(tune: dict[str, Any], out: Path, progress: bool):
    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, tune["space"])
        cfg: ExperimentConfig = load_config(tune["experiment"], overrides=_nested({**tune["set"], **params}))
        cfg = with_overrides(cfg, {"name": f"{cfg.name}_t{trial.number}", "output_root": str(out)}, f"{tune['experiment']} (trial {trial.number})")
        scores = []
        pruned = OBJECTIVES[tune["objective"]][1]
        for i, fold in enumerate(tune["folds"]):
            def report(epoch: int, score: float, i: int = i) -> None:
                step = i * 10_000 + epoch  # one step axis across the folds of a trial
                trial.report(score, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"fold {fold} epoch {epoch}: {score:.4f}")
            oof = train_fold(cfg, int(fold), progress=progress, on_epoch=report if pruned else None)
            if tune["objective"] == "val_score":
                best = read_json(cfg.output_dir() / f"fold{fold}" / "fold.json")["best_score"]
                scores.append(float("nan") if best is None else float(best))
            else:
                scores.append(float(seizure_scores(oof)[tune["objective"]]))
        value = float(sum(scores) / len(scores))
        log.info("trial %d: %s → %.5f", trial.number, params, value)
        if not math.isfinite(value):  # the worst value in the study's direction
            return float("inf") if _direction(tune, cfg) == "minimize" else float("-inf")
        return value
    return objective


def tune(path: str | Path, trials: int, storage: Optional[str] = None, progress: bool = False) -> dict[str, Any]:
    """Run (or resume) the study until it holds `trials` finished trials; returns best value/params and the counts."""
    t = load_tune(path)
    base = load_config(t["experiment"], overrides=_nested(t["set"]))
    out = Path(base.output_root) / "tune" / t["study"]
    sampler = (optuna.samplers.TPESampler(seed=t["seed"], n_startup_trials=min(5, max(1, trials // 2)))
               if t["sampler"] == "tpe" else optuna.samplers.RandomSampler(seed=t["seed"]))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if t["pruner"] == "median" \
        else optuna.pruners.NopPruner()
    study = optuna.create_study(study_name=t["study"], storage=storage_for(storage, out), sampler=sampler,
                                pruner=pruner, direction=_direction(t, base), load_if_exists=True)
    if t["start"] and not study.trials:
        study.enqueue_trial({k: v for k, v in t["start"].items() if k in t["space"]})
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    n_done = len([x for x in study.trials if x.state in done])
    if n_done < trials:
        study.optimize(_objective(t, out, progress), n_trials=trials - n_done,
                       callbacks=[optuna.study.MaxTrialsCallback(trials, states=done)], catch=(FloatingPointError,))
    table = study.trials_dataframe()
    atomic_write_csv(out / "trials.csv", table if isinstance(table, pd.DataFrame) else pd.DataFrame())
    complete = [x for x in study.trials if x.state == optuna.trial.TrialState.COMPLETE]
    result = {
        "study": t["study"], "n_trials": len(study.trials), "n_complete": len(complete),
        "n_pruned": len([x for x in study.trials if x.state == optuna.trial.TrialState.PRUNED]),
        "first_value": complete[0].value if complete else None,
        "best_value": study.best_value if complete else None,
        "best_params": study.best_params if complete else None,
        "best_trial": study.best_trial.number if complete else None,
    }
    atomic_write_json(out / "best.json", result)
    log.info("study %s: %d trial(s) (%d pruned), best %.5f with %s", t["study"], result["n_trials"], result["n_pruned"],
             result["best_value"] if result["best_value"] is not None else float("nan"), result["best_params"])
    return result
