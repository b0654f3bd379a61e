"""Which config trained an experiment's folds: one config hash per experiment folder, checked.

`experiment_hash` covers what changes a model (data preprocessing, folds, selection, model,
augmentation, training, TTA), not where files live or how fast they are made. Each fold
records it in `fold{k}/fold.json` and its checkpoints; `scores.json` records it with the list
of folds. `train` refuses to add folds of another config to a folder, and `submit.py`,
`ensemble` and `leaderboard` refuse (or flag) a folder whose folds disagree.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

from hbac.config import ExperimentConfig, from_dict, load_config, params_hash, to_dict
from hbac.errors import ExperimentMixError

log = logging.getLogger(__name__)

RUN_ONLY = {  # settings that do not change what a fold learns
    "": ("output_root", "name"),
    "data": ("name", "cache_root", "workers", "plugins", "allow_missing", "skip_unreadable", "data_dir"),
    "train": ("num_workers", "logger"),
}


def _defaults() -> dict[str, Any]:
    """Every experiment setting at its default (names are placeholders)."""
    return to_dict(from_dict(ExperimentConfig, {"name": "_", "data": {"name": "_"}}))


def _drop_defaults(d: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """`d` without the leaves equal to their default: a setting added later (with a default) leaves old hashes alone."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and isinstance(default.get(k), dict):
            sub = _drop_defaults(v, default[k])
            if sub:
                out[k] = sub
        elif k not in default or default[k] != v:
            out[k] = v
    return out


def experiment_hash(cfg: ExperimentConfig | dict[str, Any]) -> str:
    """16-hex hash of an experiment config (a dataclass or its `to_dict`): its non-default settings, less run-only ones."""
    d = to_dict(cfg) if not isinstance(cfg, dict) else json.loads(json.dumps(cfg, default=str))
    for section, keys in RUN_ONLY.items():
        target = d if not section else d.get(section, {})
        for k in keys:
            if isinstance(target, dict):
                target.pop(k, None)
    train = d.get("train")
    if isinstance(train, dict) and train.get("seeds"):  # `train.seeds` sets each run's seed: `train.seed` is per seed folder
        train.pop("seed", None)
    return params_hash(_drop_defaults(d, _defaults()))


def _fold_hash(fold_dir: Path) -> Optional[str]:
    """The config hash a fold folder records in fold.json (None: not recorded / unreadable)."""
    try:
        return json.loads((fold_dir / "fold.json").read_text()).get("config_hash")
    except (OSError, ValueError, AttributeError):
        return None


def trained_folds(exp_dir: Path) -> list[Path]:
    """Fold folders of an experiment that hold any training result (best.pt, last.pt, fold.json, or a seed{s}/ checkpoint)."""
    return sorted(
        p for p in Path(exp_dir).glob("fold*")
        if p.is_dir() and (any((p / f).exists() for f in ("best.pt", "last.pt", "fold.json")) or any(p.glob("seed*/*.pt")))
    )


def fold_finished(fold_dir: Path, want: str) -> bool:
    """Whether a fold (or seed) folder finished with the config of hash `want`: its fold.json, a fold's last file
    (only last.pt's `complete` flag is set after it), records that hash, and its oof.csv is there."""
    return _fold_hash(Path(fold_dir)) == want and (Path(fold_dir) / "oof.csv").exists()


def folder_hash(exp_dir: Path) -> Optional[str]:
    """The config hash of `exp_dir/config.yaml` (None when absent)."""
    p = Path(exp_dir) / "config.yaml"
    if not p.exists():
        return None
    cfg = load_config(p)
    return experiment_hash(cfg) if isinstance(cfg, ExperimentConfig) else None


def mixed_folds(exp_dir: Path) -> Optional[str]:
    """None when every fold of `exp_dir` that records a config hash matches its config.yaml; else why not."""
    want = folder_hash(exp_dir)
    if want is None:
        return None
    bad = [f"{p.name} ({h})" for p in trained_folds(exp_dir) if (h := _fold_hash(p)) is not None and h != want]
    if bad:
        return f"{exp_dir}: folds trained with another config than its config.yaml ({want}): {', '.join(bad)}"
    return None


def check_experiment(exp_dir: Path) -> None:
    """Raise ExperimentMixError when an experiment folder's folds come from more than one config."""
    why = mixed_folds(exp_dir)
    if why:
        raise ExperimentMixError(f"{why}; retrain it with `python -m hbac train CONFIG --overwrite` or under a new name")


def check_checkpoint(ckpt: dict[str, Any], path: Path, want: Optional[str]) -> None:
    """Raise ExperimentMixError when checkpoint `path` was trained with another config than `want`."""
    if want is None or "config" not in ckpt:
        return
    try:
        got = experiment_hash(to_dict(from_dict(ExperimentConfig, ckpt["config"], str(path))))
    except ValueError:  # an older config layout: compare the raw dicts' hashes instead
        got = experiment_hash(ckpt["config"])
    if got != want:
        raise ExperimentMixError(
            f"{path} was trained with another config ({got}) than its experiment's config.yaml ({want}); "
            f"retrain with `python -m hbac train CONFIG --overwrite` or under a new name"
        )


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_changes(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys
