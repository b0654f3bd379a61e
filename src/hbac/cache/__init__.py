"""Caches: building (`build`) and reading (`reader`); `open_cache` reuses or builds the cache of a config."""
from __future__ import annotations

from hbac.cache.build import prepare
from hbac.cache.format import PREPARE_HINT
from hbac.cache.reader import Cache, cache_status
from hbac.config import DataConfig
from hbac.errors import CacheError

__all__ = ["Cache", "cache_status", "open_cache", "prepare"]


def open_cache(cfg: DataConfig, build: bool = True, progress: bool = True) -> Cache:
    """The cache for `cfg`: reused when its hash matches, else built with `hbac.prepare.prepare` (if `build`)."""
    status = cache_status(cfg)
    if status == "ok":
        return Cache(cfg.cache_dir())
    if not build:
        why = {
            "missing": "does not exist",
            "incomplete": "is incomplete (no meta.json, or arrays missing or short)",
            "stale": "was built with other parameters or an older format (hash differs)",
            "changed": "was built from other input data (the sample table or signal files changed since)",
        }[status]
        raise CacheError(
            f"cache '{cfg.name}' at {cfg.cache_dir()} {why}; build it with `{PREPARE_HINT}` "
            f"(data_dir {cfg.data_dir}, cache_root {cfg.cache_root})"
        )
    return Cache(prepare(cfg, progress=progress))
