"""The `arcx-operator` command line: flags documented in docs/operator.md exist, bad
credentials end with a clear message and exit code 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from op_helpers import REPO

from arcx_operator.main import build_parser


def test_documented_flags_exist() -> None:
    doc = (REPO / "docs" / "operator.md").read_text()
    rows = [line.split("|")[1] for line in doc.splitlines() if line.startswith("| `--")]
    documented = {flag for cell in rows for flag in re.findall(r"`(--[a-z-]+)", cell)}
    known = {opt for action in build_parser()._actions for opt in action.option_strings}
    assert documented, "no flags found in docs/operator.md"
    assert documented - known == set()
    assert {"--kubeconfig", "--namespace", "--default-job-image", "--leader-election"} <= documented


def test_defaults() -> None:
    args = build_parser().parse_args([])
    assert args.leader_election is True and args.health_port == 8080 and args.sync_interval == 5.0
    args = build_parser().parse_args(["--no-leader-election", "--namespace=a", "--namespace=b"])
    assert args.leader_election is False and args.namespace == ["a", "b"]


def test_unreadable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "arcx-operator"
    proc = subprocess.run(
        [str(exe), f"--kubeconfig={tmp_path / 'missing'}", "--health-port=0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot load Kubernetes credentials" in proc.stderr and "--kubeconfig" in proc.stderr


def test_an_unusable_policy_flag_is_a_clear_error() -> None:
    exe = Path(sys.executable).parent / "arcx-operator"
    proc = subprocess.run(
        [str(exe), "--allowed-volume-types=persistentVolumeClaim,hostpath", "--health-port=0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--allowed-volume-types: unknown volume type(s) hostpath" in proc.stderr
