"""Where the SAELens overlay is (``make saelens``), and how a test runs Python with it.

Outside CI a missing overlay skips the SAELens tests; under CI (``CI`` set) it is an
error, so CI cannot pass without having run SAELens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = Path(__file__).with_name("saelens_check.py")


def overlay() -> Path:
    path = Path(os.environ.get("ARCX_SAELENS_PATH", REPO / ".venv" / "saelens"))
    if not (path / "sae_lens").is_dir():
        msg = f"SAELens is not installed at {path}: run `make saelens`"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run_check(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(overlay()), str(REPO)])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("WANDB_MODE", "disabled")
    res = subprocess.run(
        [sys.executable, str(CHECK), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    return res
