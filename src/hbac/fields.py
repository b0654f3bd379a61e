"""Dataclass field helpers shared by the config classes and the dataset adapters' options (no hbac imports)."""
from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, Optional


def bounded(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, ge: Optional[float] = None,
            gt: Optional[float] = None, le: Optional[float] = None, lt: Optional[float] = None) -> Any:
    """A dataclass field whose value (each item, for a list) is checked against bounds on load."""
    meta = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"bounds": meta})
    return field(default=default, metadata={"bounds": meta})
