"""Constants of the on-disk cache format (docs/internals.md, "Cache")."""
from __future__ import annotations

CACHE_FORMAT = 2  # bump when the on-disk layout changes; older caches are rebuilt (2: meta.json "extras")


PREPARE_HINT = "python -m hbac prepare CONFIG"
