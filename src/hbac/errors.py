"""Every error the package raises on bad input; each message names the key, file or row."""
from __future__ import annotations


class ConfigError(ValueError):
    """A config value is unknown, missing or of the wrong type; the message names the key."""


class DataError(ValueError):
    """Raw data is malformed; the message names the file and the column or row."""


class CacheError(FileNotFoundError):
    """A cache is absent, incomplete or out of date; the message says which command builds it."""


class AlignmentError(ValueError):
    """Members' OOF files do not cover the same rows, folds, classes or targets."""


class CheckpointError(ValueError):
    """A checkpoint file is corrupt or not a trusted checkpoint (holds more than tensors and plain values); names the file."""


class ExperimentMixError(ValueError):
    """An experiment folder holds folds trained with different configs; names the folder and the folds."""


class WeightsError(FileNotFoundError):
    """Pretrained backbone weights are absent or cannot be fetched; the message names the file and the fetch command."""


class DiskFullError(OSError):
    """The disk filled up while writing an output; the message names the file or folder being written."""
