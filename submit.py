#!/usr/bin/env python
"""Offline inference on test.csv → submission.csv.  See `python submit.py --help`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # works without `pip install -e .` too

from hbac.cli import submit_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(submit_main())
