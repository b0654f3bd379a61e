"""Tasks: the classes, target and prediction columns, metrics and their direction of each problem.

`get_task("hms" | "seizure")` → a `Task`; `task_for(cfg)` → the task of a config's dataset.
"""
from hbac.tasks.base import Task, json_safe
from hbac.tasks.registry import (
    event_datasets,
    get_task,
    task_for,
    task_from_classes,
    task_names,
    task_of_scores,
)

__all__ = ["Task", "event_datasets", "get_task", "json_safe", "task_for", "task_from_classes", "task_names", "task_of_scores"]
