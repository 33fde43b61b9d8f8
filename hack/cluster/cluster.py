"""``Cluster``: what a test needs of a Kubernetes cluster, local control plane or kind alike."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hack.cluster.controlplane import ControlPlane
from hack.cluster.kubeapi import Kube
from hack.cluster.tools import find_tools


class CommandFailed(RuntimeError):
    def __init__(self, argv: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        super().__init__(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_bin: str
    helm_bin: str
    control_plane: ControlPlane | None = None

    @property
    def local(self) -> bool:
        return self.control_plane is not None

    @property
    def kube(self) -> Kube:
        return Kube(self.kubeconfig)

    def _run(
        self, argv: list[str], check: bool, input_text: str | None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, capture_output=True, text=True, input=input_text, timeout=300)
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc)
        return proc

    def kubectl(
        self, *args: str, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self._run(
            [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args], check, input_text
        )

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run([self.helm_bin, f"--kubeconfig={self.kubeconfig}", *args], check, None)


@contextlib.contextmanager
def local_cluster(workdir: Path, *, audit: bool = False) -> Iterator[Cluster]:
    """Start the local control plane in ``workdir``; raises ToolsMissing when not built."""
    tools = find_tools()
    cp = ControlPlane(workdir, tools=tools, audit=audit)
    cp.start()
    try:
        yield Cluster(cp.kubeconfig, str(tools.kubectl), str(tools.helm), cp)
    finally:
        cp.stop()


def external_cluster(kubeconfig: Path) -> Cluster:
    """A cluster someone else runs (kind): kubectl and helm from PATH."""
    kubectl = shutil.which("kubectl")
    helm = shutil.which("helm")
    if not kubectl or not helm:
        raise RuntimeError("ARCX_E2E_KUBECONFIG is set but kubectl or helm is not on PATH")
    return Cluster(kubeconfig, kubectl, helm, None)
