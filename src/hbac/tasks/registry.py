"""The task registry: `get_task(name)` and `task_for(dataset)` (which task a dataset's experiments have)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

import hbac.datasets as datasets
from hbac.errors import ConfigError
from hbac.tasks.base import Task
from hbac.tasks.hms import HmsTask
from hbac.tasks.kl import oof_classes
from hbac.tasks.seizure import SeizureTask

TASKS: dict[str, type[Task]] = {"hms": HmsTask, "seizure": SeizureTask}
# the order old scores.json files (before tasks) are offered to the tasks: the seizure layout is told by its
# own section, the rest were all scored by KL
LEGACY_ORDER = ("seizure", "hms")


def task_names() -> list[str]:
    """The registered task names."""
    return sorted(TASKS)


def get_task(name: str, **options: Any) -> Task:
    """The task called `name` ("hms" | "seizure"), made with `options` (e.g. min_votes, threshold)."""
    cls = TASKS.get(str(name))
    if cls is None:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    return cls(**options)


def _adapter(source: Any) -> Any:
    """The dataset adapter of an experiment config, a data config (its plugins imported), or a dataset name."""
    if isinstance(source, str):
        return datasets.get_adapter(source)
    data = getattr(source, "data", source)
    if not isinstance(getattr(data, "dataset", None), str):
        raise TypeError(f"task_for: expected a config or a dataset name, got {type(source).__name__}")
    return datasets.adapter_for(data)


def task_from_classes(classes: Sequence[str]) -> Task:
    """The registered task whose classes are exactly `classes` (in any order); ConfigError otherwise."""
    for name in task_names():
        task = get_task(name)
        if sorted(task.classes) == sorted(classes):
            return task
    raise ConfigError(f"no task has the classes {list(classes)}; known tasks: "
                      + "; ".join(f"{n} {list(get_task(n).classes)}" for n in task_names()))


def task_for(source: Any, classes: Optional[Sequence[str]] = None) -> Task:
    """The task of a dataset (`source`: experiment/data config or dataset name), as its adapter declares
    (`hbac.datasets.get_adapter(name).task`); given `classes` (a cache's, an OOF file's), they must be the task's."""
    adapter = _adapter(source)
    task = get_task(adapter.task)
    if classes is not None:
        task.check_classes(classes, f"dataset {adapter.name!r}")
    return task


def score_oof_file(path: str | Path, **options: Any) -> tuple[Task, dict[str, Any]]:
    """(task, its scores) of an OOF CSV; the task is the one of its classes, made with the `options` it takes
    (hms: min_votes; seizure: threshold). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OOF file not found: {path}")
    df = pd.read_csv(path)
    try:
        name = task_from_classes(oof_classes(df)).name
        accepted = {"hms": ("min_votes",), "seizure": ("threshold",)}.get(name, ())
        task = get_task(name, **{k: v for k, v in options.items() if k in accepted and v is not None})
        return task, task.score_oof(df)
    except KeyError as e:
        raise KeyError(f"{path}: {e.args[0]}") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def task_of_scores(scores: dict[str, Any]) -> tuple[Optional[Task], dict[str, Any], str]:
    """(task, scores in the current layout, note) of a parsed scores.json; None for an unknown task.

    Current files name their task; older ones ("task" = the dataset name) are offered to each task's
    `from_legacy` in `LEGACY_ORDER`.
    """
    name = scores.get("task")
    if name in TASKS:
        task = get_task(name)
        if scores.get("metric", task.metric) == task.metric:
            return task, {"dataset": name, **scores}, ""
    legacy = dict(scores, dataset=scores.get("dataset") or name)
    for candidate in LEGACY_ORDER:
        task = get_task(candidate)
        up = task.from_legacy(legacy)
        if up is not None:
            return task, up[0], up[1]
    return None, legacy, f"unknown task {name!r}"


def event_datasets() -> list[str]:
    """Registered datasets whose task has events (`Task.event_class`): what `detect` and `stream` can serve."""
    return [n for n in datasets.registered() if get_task(datasets.get_adapter(n).task).event_class is not None]
