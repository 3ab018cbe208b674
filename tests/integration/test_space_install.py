"""A Space's install, end to end: `make space-check` builds a venv from requirements.txt alone (under /tmp)
and runs tests/space_check.py in it (default model loads, Chat makes a call, every tool answers).

Opt-in (TOOLFORMER_SPACE_CHECK=1): it needs the package registry and takes about 10 minutes on 2 CPU cores
(5 of them pip), so neither `make test` nor CI runs it; the README states its last result."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("TOOLFORMER_SPACE_CHECK") != "1",
                       reason="opt-in: TOOLFORMER_SPACE_CHECK=1 (needs the package registry, ~10 min)"),
]


@pytest.mark.timeout(2400)
def test_a_venv_from_requirements_txt_alone_runs_the_app(tmp_path):
    done = subprocess.run(["make", "--no-print-directory", "space-check", f"SPACE_VENV={tmp_path / 'venv'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=2300, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    verdict = next((ln for ln in reversed(lines) if ln.startswith("space-check:")), "no verdict")
    assert done.returncode == 0 and verdict.startswith("space-check: PASS"), "\n".join(lines[-30:])
