"""An experiment: its folds in turn, then oof.csv and scores.json."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from hbac.config import ExperimentConfig, load_config, save_config, to_dict
from hbac.data.split import experiment_table
from hbac.engine.fold import train_fold
from hbac.engine.seeds import train_fold_seeds
from hbac.engine.outputs import collect_oof
from hbac.engine.runtime import configure_threads
from hbac.features.baseline import train_features_fold

log = logging.getLogger(__name__)


def train_experiment(cfg: ExperimentConfig, folds: Optional[list[int]] = None, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the given folds (default all) and (re)write oof.csv and scores.json from every finished fold."""
    configure_threads(cfg.train.threads)
    out = cfg.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    _check_config(cfg, out, resume)
    save_config(cfg, out / "config.yaml")
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("hbac").addHandler(handler)
    try:
        fold_fn = train_features_fold if cfg.model.kind == "features" else train_fold_seeds if cfg.train.seeds else train_fold
        data = experiment_table(cfg)
        todo = folds if folds is not None else list(range(cfg.folds.n_folds))
        for k in todo:
            if not 0 <= k < cfg.folds.n_folds:
                raise ValueError(f"--fold {k} is out of range: the config has n_folds {cfg.folds.n_folds}")
            fold_fn(cfg, k, resume=resume, data=data, progress=progress)
        return collect_oof(cfg)
    finally:
        logging.getLogger("hbac").removeHandler(handler)
        handler.close()


def _check_config(cfg: ExperimentConfig, out: Path, resume: bool) -> None:
    """Refuse to mix folds trained with different settings in one output folder."""

    old_path = out / "config.yaml"
    if not old_path.exists():
        return
    old = to_dict(load_config(old_path))
    new = to_dict(cfg)
    keys = [k for k in new if k not in ("output_root",) and old.get(k) != new.get(k)]
    if not keys:
        return
    trained = sorted({p.relative_to(out).parts[0] for p in [*out.glob("fold*/best.pt"), *out.glob("fold*/seed*/best.pt")]})
    if trained:
        msg = f"{out}: config differs from the one its trained folds ({', '.join(sorted(trained))}) used, in {keys}"
        if resume:
            raise ValueError(msg + "; --resume needs the same config")
        log.warning(msg + "; folds trained now will not match the others (rename the experiment to keep both)")
