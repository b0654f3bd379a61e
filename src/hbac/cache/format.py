"""Constants of the on-disk cache format (docs/internals.md, "Cache")."""
from __future__ import annotations

from hbac.datasets.kaggle_spec import SPEC_STEP_S, SPEC_WINDOW_S

CACHE_FORMAT = 1  # bump when the on-disk layout changes; older caches are rebuilt


SPEC_STEPS = int(round(SPEC_WINDOW_S / SPEC_STEP_S))  # 300 rows of a Kaggle spectrogram window


PREPARE_HINT = "python -m hbac prepare CONFIG"
