"""Preloaded first by prepare's forkserver, never imported elsewhere: the server dies with the process that
started it, so a kill -9 of `prepare` leaves no server behind (its workers die with the server). A top-level
module, so that importing it imports nothing heavy before the guard is set."""
from __future__ import annotations

import os

from hbac.procs import PARENT_ENV, die_with_parent

die_with_parent()
if os.environ.get(PARENT_ENV, "").isdigit() and os.getppid() != int(os.environ[PARENT_ENV]):
    os._exit(1)  # the parent died before prctl took effect
