"""The task registry: `get_task(name)` and `task_for(dataset)` (which task a dataset's experiments have)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import hbac.datasets as datasets
from hbac.errors import ConfigError
from hbac.tasks.base import Task
from hbac.tasks.hms import HmsTask
from hbac.tasks.seizure import SeizureTask

TASKS: dict[str, type[Task]] = {"hms": HmsTask, "seizure": SeizureTask}


def task_names() -> list[str]:
    """The registered task names."""
    return sorted(TASKS)


def get_task(name: str, **options: Any) -> Task:
    """The task called `name` ("hms" | "seizure"), made with `options` (e.g. min_votes, threshold)."""
    cls = TASKS.get(str(name))
    if cls is None:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    return cls(**options)


def _dataset_name(source: Any) -> str:
    """The `dataset:` value of an experiment config, a data config, or a name."""
    if isinstance(source, str):
        return source
    data = getattr(source, "data", source)
    name = getattr(data, "dataset", None)
    if not isinstance(name, str):
        raise TypeError(f"task_for: expected a config or a dataset name, got {type(source).__name__}")
    return name


def task_from_classes(classes: Sequence[str]) -> Task:
    """The registered task whose classes are exactly `classes` (in any order); ConfigError otherwise."""
    for name in task_names():
        task = get_task(name)
        if sorted(task.classes) == sorted(classes):
            return task
    raise ConfigError(f"no task has the classes {list(classes)}; known tasks: "
                      + "; ".join(f"{n} {list(get_task(n).classes)}" for n in task_names()))


def task_for(source: Any, classes: Optional[Sequence[str]] = None) -> Task:
    """The task of a dataset (`source`: experiment/data config or dataset name).

    The dataset registry's adapter declares it (`hbac.datasets.get_adapter(name).task`); where
    no registry exists, the task is the one whose classes are `classes`. Given both, they must agree.
    """
    name = _dataset_name(source)
    get_adapter = getattr(datasets, "get_adapter", None)  # the dataset registry, once it exists
    if get_adapter is not None:
        task = get_task(get_adapter(name).task)
        if classes is not None:
            task.check_classes(classes, f"dataset {name!r}")
        return task
    if classes is None:
        raise ConfigError(f"dataset {name!r}: cannot tell its task without its classes")
    return task_from_classes(classes)
