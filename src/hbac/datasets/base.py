"""The dataset adapter protocol: what `prepare` needs to turn one raw layout into a cache.

An adapter is one module that subclasses `DatasetAdapter` and calls
`hbac.datasets.register(MyAdapter())` on import (docs/internals.md, "Datasets").
"""
from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, Sequence

import numpy as np
import pandas as pd

# The config an adapter receives is hbac.config.DataConfig; not imported (not even for type checking),
# because hbac.config imports this package to validate `dataset:` and the two would form a cycle.
DataConfig = Any

TASKS = ("hms", "seizure")  # the task a dataset's labels belong to (hbac.tasks.get_task)


@dataclass(frozen=True)
class ExtraInput:
    """An extra array cached beside the EEG (e.g. the HMS Kaggle spectrogram), one file per `id_column` value.

    Every file is a time series of rows `(n_rows, width)`; a sample's window is the
    `window_rows` rows starting at the first row whose time is ≥ the sample's `offset_column`
    (rows past the file's end read as NaN). Cached as `<stem>.npy` (all files' rows stacked),
    `<stem>s.csv` (`id_column, <stem>_start, <stem>_len, time0`) and the samples column
    `<stem>_row` (-1: no window).
    """

    name: str  # model input key, e.g. "kaggle_spec"
    stem: str  # cache file stem, e.g. "spec" → spec.npy, specs.csv, samples.spec_row
    width: int  # values per row (400 for the Kaggle spectrogram)
    window_rows: int  # rows per sample window (300 = 10 min at 2 s)
    id_column: str  # sample-table column naming the file, e.g. "spectrogram_id"
    offset_column: str  # sample-table column: window start, in the file's time units (s)
    path: Callable[[DataConfig, Any], Path]  # (cfg, file id) → the raw file
    read: Callable[[Path], tuple[np.ndarray, np.ndarray]]  # file → (times (n,), values (n, width) float32)
    enabled: Callable[[DataConfig], bool] = lambda cfg: True  # cache it for this config?
    switch: str = ""  # the data-config key `enabled` reads, named in messages (e.g. "kaggle_spec")
    to_input: Optional[Callable[[np.ndarray], np.ndarray]] = None  # raw (window_rows, width) window → model array
    flip: Optional[Sequence[int]] = None  # hemisphere flip: permutation of the model array's axis 0
    label: str = ""  # what one file is, in messages and `skipped` keys ("spectrogram" → missing_spectrogram); default: name
    masks: bool = False  # time/frequency masks (augment.time_mask/freq_mask) apply: a (C, F, T) image


@dataclass
class NoOptions:
    """The options of an adapter that declares none: its data configs take only the generic keys.

    An adapter's options class is a dataclass like this one (fields typed, bounds with
    `hbac.fields.bounded`), named by `DatasetAdapter.options`. Its fields are written at the top
    level of the data config, beside the generic keys, and validated like them on load
    (`hbac.config`); the validated object is `DataConfig.options`. `legacy` lists keys the generic
    data config once carried for every dataset: a file (or a saved run's config) may still give one,
    with exactly that value, which changes nothing; hash_params adds them so older caches keep their hash
    (optional: an options class without `legacy` has none).
    """

    legacy: ClassVar[dict[str, Any]] = {}


@dataclass(frozen=True)
class SynthOptions:
    """`hbac synth` options; a synthetic writer uses those that fit its layout (the others are ignored)."""

    seed: int = 0
    n_patients: int = 4  # patients / subjects (layouts grouped by patient)
    n_files: int = 3  # recordings (EDF files, runs) per patient
    file_s: float = 600.0  # seconds per recording
    n_eegs: Optional[int] = None  # labelled recordings of a layout counted per recording (None: the writer's default)
    n_test: int = 4  # unlabelled test recordings, for layouts with a test split
    low_vote_other: float = 0.0  # share of low-vote raters who answer "other" whatever they see (vote-labelled layouts)


class DatasetAdapter(ABC):
    """One raw dataset layout → the common sample table and a signal reader.

    Required: `name` (the config's `dataset:` value), `task` (one of `TASKS`), `classes`,
    `table`, `channels`, `path`, `read`. Optional hooks have defaults: `options` (the dataclass of
    the dataset's own config keys, `cfg.options`) is `NoOptions`, `sample_s` is None, `missing_reason` says nothing
    is wrong (`prepare` takes every length from the read itself: no header pass),
    `extra_inputs` is empty, `fs` (native Hz, used only for an empty cache) is None, `synthetic`
    (the writer `hbac synth` calls) is None, `reads_release_gil` (threads for `prepare`) is False.
    """

    name: ClassVar[str]
    task: ClassVar[str]
    classes: ClassVar[Sequence[str]]
    fs: ClassVar[Optional[float]] = None
    extra_inputs: ClassVar[Sequence[ExtraInput]] = ()
    options: ClassVar[type] = NoOptions  # the dataclass of this dataset's own data-config keys (see NoOptions)
    # True when `read` and the extra inputs' reads spend their time in code that releases the GIL (polars,
    # numpy): `prepare` then runs its workers as threads, with no process pool to start (cache.build.uses_threads)
    reads_release_gil: ClassVar[bool] = False
    # "module:function" writing this layout for `hbac synth`, called as function(out: Path, opts: SynthOptions);
    # a name, not the function: synthetic writers import their adapter's layout constants (imported when used)
    synthetic: ClassVar[Optional[str]] = None

    @abstractmethod
    def table(self, cfg: DataConfig) -> pd.DataFrame:
        """The common sample table: sample_id, recording_id, group, start_s, duration_s, `<class>_vote`…, n_votes."""

    @abstractmethod
    def channels(self, cfg: DataConfig) -> list[str]:
        """Names of the channels `read` returns, in order."""

    @abstractmethod
    def path(self, cfg: DataConfig, recording_id: Any) -> Path:
        """The raw file a recording is read from (missing-file checks and error messages)."""

    @abstractmethod
    def read(self, cfg: DataConfig, recording_id: Any) -> tuple[np.ndarray, float]:
        """One recording → ((n_chans, n_times) float32 µV, fs Hz), montage applied, not yet filtered.

        `prepare` may clip the array in place: return a fresh one, not one kept in a cache."""

    def sample_s(self, cfg: DataConfig) -> Optional[tuple[str, float]]:
        """(data-config key, seconds) of every cached sample when they all have that length, else None.

        Experiment configs check `model.window_s` (a centred crop) against it on load."""
        return None

    def missing_reason(self, cfg: DataConfig, recording_id: Any) -> Optional[str]:
        """Why a recording cannot be used (treated like a missing file by `prepare`), or None."""
        return None

    def extras(self, cfg: DataConfig) -> list[ExtraInput]:
        """The extra inputs cached for this config (those of `extra_inputs` that are enabled)."""
        return [e for e in self.extra_inputs if e.enabled(cfg)]

    def __repr__(self) -> str:
        return f"<dataset adapter {self.name!r} ({type(self).__module__}.{type(self).__qualname__}), task {self.task!r}>"


def check_adapter(adapter: Any) -> None:
    """Raise TypeError naming what an object lacks to be a dataset adapter."""
    if not isinstance(adapter, DatasetAdapter):
        raise TypeError(f"{adapter!r} is not a hbac.datasets.DatasetAdapter instance")
    name = getattr(adapter, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{type(adapter).__qualname__}: `name` must be a non-empty string")
    if getattr(adapter, "task", None) not in TASKS:
        raise TypeError(f"dataset {name!r}: `task` must be one of {list(TASKS)}, got {getattr(adapter, 'task', None)!r}")
    classes = list(getattr(adapter, "classes", None) or [])
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise TypeError(f"dataset {name!r}: `classes` must list at least two class names")
    synth = getattr(adapter, "synthetic", None)
    if synth is not None and (not isinstance(synth, str) or not re.fullmatch(r"[\w.]+:\w+", synth)):
        raise TypeError(f"dataset {name!r}: `synthetic` must be 'module:function', got {synth!r}")
    opts = getattr(adapter, "options", None)
    if not (isinstance(opts, type) and dataclasses.is_dataclass(opts)):
        raise TypeError(f"dataset {name!r}: `options` must be a dataclass type (hbac.datasets.base.NoOptions: none), got {opts!r}")
    seen: set[str] = {"eeg"}
    for e in adapter.extra_inputs:
        if not isinstance(e, ExtraInput):
            raise TypeError(f"dataset {name!r}: extra input {e!r} is not an ExtraInput")
        if e.name in seen or e.stem in seen or e.stem in ("recording", "sample"):
            raise TypeError(f"dataset {name!r}: extra input name/stem {e.name!r}/{e.stem!r} clashes with another input or cache file")
        seen |= {e.name, e.stem}
