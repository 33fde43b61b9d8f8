"""arcx on a test cluster: the chart installed by real helm, and the operator run as a local
process that authenticates with a token of the chart's own ServiceAccount (from the
TokenRequest API), so the chart's RBAC is what the tests exercise.

On the local control plane no Deployment controller runs, so the chart's Deployment creates
no pod; the local process is the operator. On kind the chart's Deployment runs the operator
image and no local process is started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hack.cluster.cluster import Cluster
from hack.cluster.controlplane import free_port
from hack.cluster.tools import REPO
from hack.cluster.waiting import wait_for

CHART = REPO / "charts" / "arcx"
RELEASE = "arcx"
NAMESPACE = "arcx-system"


def install_chart(
    cluster: Cluster, namespace: str = NAMESPACE, *extra: str
) -> list[dict[str, object]]:
    """``helm upgrade --install`` the chart; returns the objects of the rendered manifest."""
    cluster.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        *extra,
    )
    manifest = cluster.helm("get", "manifest", RELEASE, "--namespace", namespace).stdout
    return [d for d in yaml.safe_load_all(manifest) if d]


def service_account_of(objects: list[dict[str, object]]) -> str:
    sas = [o for o in objects if o.get("kind") == "ServiceAccount"]
    if len(sas) != 1:
        raise RuntimeError(f"expected one ServiceAccount in the chart, found {len(sas)}")
    return str(sas[0]["metadata"]["name"])  # type: ignore[index]


def service_account_token(cluster: Cluster, namespace: str, sa: str, seconds: int = 7200) -> str:
    resp = cluster.kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    return str(resp["status"]["token"])


@dataclass
class OperatorProcess:
    """``arcx-operator`` as a local process under a ServiceAccount kubeconfig."""

    kubeconfig: Path
    namespace: str
    log: Path
    extra_args: list[str] = field(default_factory=list)
    popen: subprocess.Popen[bytes] | None = None
    health_port: int = 0
    starts: int = 0

    def start(self) -> None:
        self.health_port = free_port()
        self.starts += 1
        exe = Path(sys.executable).parent / "arcx-operator"
        argv = [
            str(exe),
            f"--kubeconfig={self.kubeconfig}",
            "--health-address=127.0.0.1",
            f"--health-port={self.health_port}",
            f"--lease-namespace={self.namespace}",
            f"--identity=local-operator-{self.starts}",
            "--log-format=text",
            "--sync-interval=2",
            "--progress-interval=2",
            *self.extra_args,
        ]
        with self.log.open("ab") as fh:
            fh.write(f"--- start {self.starts}: {' '.join(argv)}\n".encode())
            fh.flush()
            self.popen = subprocess.Popen(
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "POD_NAMESPACE": self.namespace},
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: a crash, no clean-up, the lease is not released."""
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return bool(self.popen and self.popen.poll() is None)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class ArcxSystem:
    """The installed chart and, on the local control plane, the operator process."""

    cluster: Cluster
    namespace: str
    service_account: str
    operator: OperatorProcess | None


def start_arcx(cluster: Cluster, workdir: Path, namespace: str = NAMESPACE) -> ArcxSystem:
    objects = install_chart(cluster, namespace)
    sa = service_account_of(objects)
    operator = None
    if cluster.local:
        assert cluster.control_plane
        token = service_account_token(cluster, namespace, sa)
        kubeconfig = cluster.control_plane.kubeconfig_for_token(
            token, workdir / "operator.kubeconfig", namespace
        )
        operator = OperatorProcess(kubeconfig, namespace, workdir / "operator.log")
        operator.start()
        wait_for(
            "the operator to take its lease",
            lambda: (
                (operator.alive() or _raise_dead(operator))
                and cluster.kube.get_or_none(
                    f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/arcx-operator"
                )
            ),
            timeout=60,
        )
    return ArcxSystem(cluster, namespace, sa, operator)


def _raise_dead(op: OperatorProcess) -> bool:
    raise AssertionError(f"arcx-operator exited:\n{op.tail()}")
