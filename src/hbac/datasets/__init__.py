"""Dataset adapters and their registry, keyed by the config's `dataset:` value.

Built-in adapters are the modules of this package (hms, chbmit, …), each of which calls
`register(...)` when imported: a lookup by name imports that module only, listing them
(`registered`) imports all. User adapters are loaded from `data.plugins` (a `.py` path or a
dotted module name) or from the `HBAC_PLUGINS` environment variable (entries separated by
`os.pathsep`).
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pkgutil
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Iterable, Optional

from hbac.datasets.base import (
    TASKS,
    DatasetAdapter,
    ExtraInput,
    SynthOptions,
    check_adapter,
)
from hbac.errors import ConfigError

__all__ = [
    "TASKS", "DatasetAdapter", "ExtraInput", "SynthOptions", "adapter_for", "adapter_modules", "get_adapter", "load_plugins",
    "register", "registered", "synthetic_datasets", "write_synthetic",
]

log = logging.getLogger(__name__)

PLUGINS_ENV = "HBAC_PLUGINS"

_REGISTRY: dict[str, DatasetAdapter] = {}
_LOADED: dict[str, ModuleType] = {}  # plugin spec (resolved path or module name) → module
_FAILED: dict[str, str] = {}  # built-in module → why it could not be imported
_NOT_ADAPTERS = {"base", "edf", "edf_montage", "kaggle_spec", "synthetic"}  # helper modules of this package
_builtins_done = False


def register(adapter: DatasetAdapter) -> DatasetAdapter:
    """Add an adapter under `adapter.name`; re-registering the same class (a re-import) replaces it."""
    check_adapter(adapter)
    old = _REGISTRY.get(adapter.name)
    if old is not None and _qualname(old) != _qualname(adapter):
        raise ValueError(f"dataset {adapter.name!r} is already registered by {_qualname(old)}; {_qualname(adapter)} cannot take the name")
    _REGISTRY[adapter.name] = adapter
    return adapter


def _qualname(a: DatasetAdapter) -> str:
    return f"{type(a).__module__}.{type(a).__qualname__}"


def _load_builtins() -> None:
    """Import every adapter module of this package once (each registers itself)."""
    global _builtins_done
    if _builtins_done:
        return
    _builtins_done = True
    for m in pkgutil.iter_modules(__path__):
        if not (m.name.startswith("_") or m.name in _NOT_ADAPTERS or m.ispkg):
            _import_builtin(m.name)


def _import_builtin(module: str) -> None:
    """Import the adapter module `module` of this package (it registers itself); an ImportError is remembered."""
    if module in _FAILED:
        return
    try:
        importlib.import_module(f"{__name__}.{module}")
    except ImportError as e:  # an optional dependency of one adapter must not break the others
        _FAILED[module] = f"{type(e).__name__}: {e}"
        log.warning("dataset module %s.%s not loaded: %s", __name__, module, e)


def _builtin_module(name: str) -> bool:
    """Whether this package has an adapter module named `name` (each built-in adapter is the module of its name)."""
    return (name.isidentifier() and not name.startswith("_") and name not in _NOT_ADAPTERS
            and importlib.util.find_spec(f"{__name__}.{name}") is not None)


def load_plugins(specs: Optional[Iterable[str]] = None) -> list[ModuleType]:
    """Import user adapter modules: each spec a `.py` file path or a dotted module name; plus `$HBAC_PLUGINS`."""
    env = [s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if s.strip()]
    return [_load_plugin(s, f"${PLUGINS_ENV}") for s in env] + [_load_plugin(s, "plugins") for s in specs or []]


def _load_plugin(spec: str, where: str) -> ModuleType:
    """Import one adapter module once per process; ConfigError naming `where` when it cannot be found."""
    is_file = spec.endswith(".py") or os.sep in spec or "/" in spec
    key = str(Path(spec).resolve()) if is_file else spec
    if key in _LOADED:
        return _LOADED[key]
    if is_file:
        path = Path(key)
        if not path.is_file():
            raise ConfigError(f"{where}: adapter module {spec!r} not found ({path})")
        name = f"hbac_plugin_{path.stem}_{zlib.crc32(key.encode()):08x}"  # the same in every process
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ConfigError(f"{where}: cannot import {path}")
        mod = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = mod  # dataclasses and pickling look the module up by name
        try:
            mod_spec.loader.exec_module(mod)
        except Exception as e:  # any failure inside the user's module: one line naming it (-v shows the traceback)
            sys.modules.pop(name, None)
            raise ConfigError(f"{where}: importing adapter module {path} failed: {type(e).__name__}: {e}") from e
    else:
        try:
            mod = importlib.import_module(spec)
        except ModuleNotFoundError as e:
            raise ConfigError(f"{where}: cannot import adapter module {spec!r} ({e})") from e
        except Exception as e:  # as above
            raise ConfigError(f"{where}: importing adapter module {spec!r} failed: {type(e).__name__}: {e}") from e
    _LOADED[key] = mod
    return mod


def registered() -> list[str]:
    """Names of every registered dataset (built-in and loaded plugins), sorted."""
    _load_builtins()
    load_plugins()
    return sorted(_REGISTRY)


def get_adapter(name: str) -> DatasetAdapter:
    """The adapter registered as `name`; ConfigError listing the registered names otherwise.

    A built-in name imports only its own module (with `$HBAC_PLUGINS`, as `registered` would): the others pull in
    libraries this process may never use (pyedflib, timescoring, scipy; about 0.5 s of every CLI start-up)."""
    if name not in _REGISTRY and not _builtins_done and _builtin_module(name):
        _import_builtin(name)
        load_plugins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    known = registered()
    if name not in _REGISTRY:
        failed = f"; modules that failed to import: {_FAILED}" if _FAILED else ""
        raise ConfigError(
            f"unknown dataset {name!r} (registered: {', '.join(known)}); "
            f"register your own adapter module with data.plugins or ${PLUGINS_ENV}{failed}"
        )
    return _REGISTRY[name]


def adapter_modules() -> list[str]:
    """Module names of the registered adapters (a forkserver preloads them so workers start fast)."""
    return sorted({type(a).__module__ for a in _REGISTRY.values()})


def adapter_for(cfg) -> DatasetAdapter:  # cfg: hbac.config.DataConfig
    """The adapter of a data config, after importing its `plugins` (worker processes call this too)."""
    load_plugins(getattr(cfg, "plugins", None))
    return get_adapter(cfg.dataset)


def synthetic_datasets() -> list[str]:
    """Names of the registered datasets that declare a synthetic writer (`DatasetAdapter.synthetic`), sorted."""
    return [n for n in registered() if _REGISTRY[n].synthetic]


def write_synthetic(name: str, out: Path, opts: SynthOptions) -> None:
    """Write a synthetic copy of dataset `name`'s layout to `out` with its adapter's declared writer.

    ConfigError for an unknown dataset (listing the registered ones) or one without a writer
    (listing those with one).
    """
    adapter = get_adapter(name)
    if not adapter.synthetic:
        raise ConfigError(f"dataset {name!r} declares no synthetic writer (datasets with one: {', '.join(synthetic_datasets())})")
    module, _, func = adapter.synthetic.partition(":")
    writer = getattr(importlib.import_module(module), func, None)
    if not callable(writer):
        raise ConfigError(f"dataset {name!r}: synthetic writer {adapter.synthetic!r} not found")
    writer(Path(out), opts)
