"""``Cluster``: what a test needs of a Kubernetes cluster, local control plane or kind alike.

The local cluster comes in two kinds: with the real node (containerd and a kubelet run the
project's images; hack/cluster/node.py), the default, or with the process-running test node
agent (``ARCX_E2E_NODE=agent``; hack/cluster/nodeagent/)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hack.cluster.controlplane import SERVICE_CIDR, ControlPlane
from hack.cluster.images import build as build_image
from hack.cluster.kubeapi import Kube
from hack.cluster.node import RealNode
from hack.cluster.tools import ToolsMissing, find_node_tools, find_tools

LOCK = Path("/run/lock/arcx-real-node.lock")


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
    # The images pods run, by the Dockerfile target they are built from (operator, job-cpu),
    # on the real node; empty elsewhere (kind loads its own, the node agent ignores them).
    images: dict[str, str] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        """The local control plane (with its fake TPU nodes), whichever node runs the pods."""
        return self.control_plane is not None

    @property
    def node_agent(self) -> bool:
        """Pods are host processes of the test node agent, not containers."""
        return self.control_plane is not None and self.control_plane.real_node is None

    @property
    def real_node(self) -> bool:
        return self.control_plane is not None and self.control_plane.real_node is not None

    @property
    def runs_images(self) -> bool:
        """Pods are containers of the project's images (the real node, kind): the chart's
        Deployment is the operator, and jobs name ``images`` and mount claims."""
        return not self.node_agent

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
def local_cluster(
    workdir: Path, *, audit: bool = False, real_node: bool = True
) -> Iterator[Cluster]:
    """Start the local control plane in ``workdir``, with the real node (its images built or
    taken from the cache first) or the node agent; raises ToolsMissing when something it
    needs is not built or installed. One real node at a time runs on a machine (the bridge,
    kube-proxy's iptables chains): a second waits for the first."""
    tools = find_tools()
    node = None
    images: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if real_node:
            node_tools = find_node_tools()
            stack.enter_context(machine_lock())
            pause = build_image("pause")
            built = [build_image(n) for n in ("operator", "job-cpu")]
            images = {i.name: i.ref for i in built}
            node = RealNode(workdir / "node", node_tools, built, pause, SERVICE_CIDR)
        cp = ControlPlane(workdir, tools=tools, audit=audit, real_node=node)
        cp.start(timeout=300 if node else 120)
        try:
            yield Cluster(cp.kubeconfig, str(tools.kubectl), str(tools.helm), cp, images)
        finally:
            cp.stop()


@contextlib.contextmanager
def machine_lock(timeout: float = 1800) -> Iterator[None]:
    """Held while a real node runs on this machine."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ToolsMissing(
                        f"another real node held {LOCK} for {timeout:.0f}s"
                    ) from None
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def external_cluster(kubeconfig: Path) -> Cluster:
    """A cluster someone else runs (kind): kubectl and helm from PATH; the images its nodes
    hold from ``ARCX_E2E_OPERATOR_IMAGE`` and ``ARCX_E2E_JOB_IMAGE`` (hack/kind-e2e.sh)."""
    kubectl = shutil.which("kubectl")
    helm = shutil.which("helm")
    if not kubectl or not helm:
        raise RuntimeError("ARCX_E2E_KUBECONFIG is set but kubectl or helm is not on PATH")
    images = {
        name: os.environ[var]
        for name, var in (
            ("operator", "ARCX_E2E_OPERATOR_IMAGE"),
            ("job-cpu", "ARCX_E2E_JOB_IMAGE"),
        )
        if os.environ.get(var)
    }
    return Cluster(kubeconfig, kubectl, helm, None, images)
