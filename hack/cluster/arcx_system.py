"""arcx on a test cluster: the chart installed by real helm, and the operator run as a local
process that authenticates with a token of the chart's own ServiceAccount (from the
TokenRequest API), so the chart's RBAC is what the tests exercise.

With the real node (and on kind) the chart's Deployment runs the operator image, in a
namespace that enforces Pod Security ``restricted``, reading job progress from the shared
directory through a claim mounted read-only. With the test node agent no Deployment controller
runs, so the chart's Deployment creates no pod; a local process is the operator.
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
from hack.cluster.volumes import CLAIM, restricted_namespace, share, unshare
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
    """The installed chart and, with the node agent, the operator process."""

    cluster: Cluster
    namespace: str
    service_account: str
    operator: OperatorProcess | None

    def stop(self) -> None:
        """Stop the operator: the local process, or the chart's Deployment (uninstalled, so
        later tests of the session have the API to themselves)."""
        if self.operator:
            self.operator.stop()
            return
        if self.cluster.runs_images:
            self.cluster.helm("uninstall", RELEASE, "--namespace", self.namespace, "--wait")
            wait_for(
                "the operator pods to go",
                lambda: (
                    not self.cluster.kube.get(
                        f"/api/v1/namespaces/{self.namespace}/pods",
                        labelSelector="app.kubernetes.io/name=arcx",
                    )["items"]
                ),
                timeout=90,
            )
            unshare(self.cluster.kube, self.namespace)
            self.cluster.kube.delete(f"/api/v1/namespaces/{self.namespace}")
            wait_for(
                f"namespace {self.namespace} to be deleted",
                lambda: (
                    self.cluster.kube.get_or_none(f"/api/v1/namespaces/{self.namespace}") is None
                ),
                timeout=120,
            )


def image_values(cluster: Cluster, shared: Path) -> list[str]:
    """helm --set flags: the images the nodes hold, never pulled, and the shared claim."""
    op_repo, op_tag = cluster.images["operator"].rsplit(":", 1)
    job_repo, job_tag = cluster.images["job-cpu"].rsplit(":", 1)
    flags = {
        "image.repository": op_repo,
        "image.tag": op_tag,
        "image.pullPolicy": "Never",
        "jobImage.repository": job_repo,
        "jobImage.tag": job_tag,
        "extraVolumes[0].name": "shared",
        "extraVolumes[0].persistentVolumeClaim.claimName": CLAIM,
        "extraVolumes[0].persistentVolumeClaim.readOnly": "true",
        "extraVolumeMounts[0].name": "shared",
        "extraVolumeMounts[0].mountPath": str(shared),
        "extraVolumeMounts[0].readOnly": "true",
        # The TPU samples name their Workload Identity ServiceAccount.
        "policy.allowedServiceAccounts": "{arcx-job}",
        "syncIntervalSeconds": "2",
        "progressIntervalSeconds": "2",
    }
    out = []
    for k, v in flags.items():
        out += ["--set-string" if k.endswith(".tag") else "--set", f"{k}={v}"]
    return out


def start_arcx(
    cluster: Cluster, workdir: Path, namespace: str = NAMESPACE, shared: Path | None = None
) -> ArcxSystem:
    if cluster.runs_images:
        assert shared is not None, "the operator pod reads progress from the shared dir"
        cluster.kube.create("/api/v1/namespaces", restricted_namespace(namespace))
        share(cluster.kube, namespace, shared)
        objects = install_chart(cluster, namespace, *image_values(cluster, shared))
    else:
        objects = install_chart(cluster, namespace)
    sa = service_account_of(objects)
    operator = None
    if cluster.node_agent:
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
    else:
        wait_for(
            "the operator Deployment to be available and take its lease",
            lambda: (
                _available(cluster, namespace)
                and cluster.kube.get_or_none(
                    f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/arcx-operator"
                )
            ),
            timeout=180,
            describe=lambda: _pods_described(cluster, namespace),
        )
    return ArcxSystem(cluster, namespace, sa, operator)


def _available(cluster: Cluster, namespace: str) -> bool:
    deps = cluster.kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"]
    return bool(deps) and all(
        (d.get("status") or {}).get("availableReplicas", 0) >= 1 for d in deps
    )


def _pods_described(cluster: Cluster, namespace: str) -> str:
    pods = cluster.kube.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    events = cluster.kube.get(f"/api/v1/namespaces/{namespace}/events")["items"][-10:]
    lines = [
        f"pod {p['metadata']['name']}: {p.get('status', {}).get('phase')} "
        f"{str(p.get('status', {}).get('containerStatuses'))[:400]}"
        for p in pods
    ]
    return "\n".join(lines + [f"event {e.get('reason')}: {e.get('message')}" for e in events])


def _raise_dead(op: OperatorProcess) -> bool:
    raise AssertionError(f"arcx-operator exited:\n{op.tail()}")
