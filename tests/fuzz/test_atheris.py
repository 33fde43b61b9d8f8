"""Every coverage-guided fuzz target, run briefly: a few thousand inputs each, from its seeds.

A crash (any exception outside the parser's documented error) fails the test and leaves the
input under the test's temporary directory; the long run is in docs/testing.md, "Fuzzing".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")  # requirements-dev.txt installs it; a bare runtime venv skips

TARGETS_FILE = Path(__file__).with_name("atheris_targets.py")
TARGETS = ["task_row", "json_elements", "encoder_spec", "answer", "safetensors_header", "marker",
           "manifest", "job_config"]  # fmt: skip
RUNS = 3000


def test_the_target_list_is_complete() -> None:
    proc = subprocess.run(
        [sys.executable, str(TARGETS_FILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and f"<{'|'.join(TARGETS)}>" in proc.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_clean(tmp_path: Path, target: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(TARGETS_FILE), target, str(tmp_path / "corpus"),
         f"-runs={RUNS}", "-timeout=10", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert proc.returncode == 0 and not crashes, proc.stderr[-3000:]
    assert f"Done {RUNS} runs" in proc.stderr
