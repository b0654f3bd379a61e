"""`--help` answers without importing torch (it takes seconds and hundreds of MB)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

CHECK = """
import runpy, sys
sys.argv = {argv!r}
try:
    {run}
except SystemExit as e:
    assert e.code == 0, e.code
print("torch" in sys.modules)
"""


@pytest.mark.parametrize("argv,run", [
    (["submit.py", "--help"], "runpy.run_path('submit.py', run_name='__main__')"),
    (["hbac", "--help"], "import hbac.cli; hbac.cli.main(sys.argv[1:])"),
    (["hbac", "train", "--help"], "import hbac.cli; hbac.cli.main(sys.argv[1:])"),
])
def test_help_does_not_import_torch(argv, run):
    code = CHECK.format(argv=argv, run=run)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False", f"{' '.join(argv)} imported torch"


def test_oof_commands_do_not_import_torch():
    """`ensemble`, `leaderboard` and `score` read only OOF tables and scores: their modules leave torch out
    (checkpoints live in `engine.checkpoint`, apart from `engine.outputs`)."""
    code = "import sys, hbac.ensemble, hbac.leaderboard, hbac.tasks.registry, hbac.engine.outputs; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False", "an OOF-only command's modules imported torch"
