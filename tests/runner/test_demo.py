"""`arcx demo`, the README's first command: tiny model, bundled tasks, 2 processes, verify."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    cmd = [sys.executable, "-m", "arcx.cli", "demo", "--workdir", str(tmp_path), "--tasks", "6"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "units committed and intact" in first.stdout and "\nOK\n" in first.stdout
    assert "tasks        6" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert '"unitsAlreadyCommitted": 1' in again.stderr  # resumed: nothing left to do
