"""A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC, service-account
signing), kube-controller-manager, kube-scheduler and the JobSet controller with its CRDs,
plus the test node agent (``hack/cluster/nodeagent/``) in place of kubelets.

The shape follows envtest's control plane: every component is a child process on free
loopback ports, logs go to files in the work directory, start waits for health endpoints,
stop terminates in reverse order.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hack.cluster.kubeapi import ApiError, Kube
from hack.cluster.node import RealNode
from hack.cluster.nodeconfig import NODE_IP
from hack.cluster.nodeshapes import AGENT_NODES, TPU_NODES
from hack.cluster.pki import Pki, make_pki
from hack.cluster.procs import Proc, ProcessError, Procs, free_port
from hack.cluster.tools import REPO, Tools, find_tools

SERVICE_CIDR = "10.0.0.0/24"
KCM_CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "ttl-after-finished-controller",
    "pod-garbage-collector-controller",
    # Lifts the not-ready taint the API server puts on new nodes once they report Ready.
    "node-lifecycle-controller",
    # Bind claims to pre-created PersistentVolumes; release their in-use finalizers.
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
)
# With the real node: the chart's Deployment runs, Services get endpoints (kube-proxy and
# CoreDNS read EndpointSlices).
REAL_NODE_CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "taint-eviction-controller",
)


class ControlPlaneError(RuntimeError):
    """A component failed to start; the message names it and ends with its log tail."""


@dataclass
class ControlPlane:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager).

    ``kubeconfig`` is an admin kubeconfig (client certificate in group system:masters).
    ``audit`` writes an API audit log (``audit.log`` in the work directory) at Metadata level.
    """

    workdir: Path
    tools: Tools | None = None
    # Node objects without a kubelet (hack/cluster/nodeshapes.py); None: the node agent's
    # CPU and TPU nodes, or only the fake TPU nodes beside a real node.
    nodes: list[dict[str, object]] | None = None
    audit: bool = False
    verbose: bool = False
    real_node: RealNode | None = None
    procs: Procs = field(default_factory=lambda: Procs(Path()))
    api_port: int = 0
    pki: Pki | None = None

    @property
    def address(self) -> str:
        """Where the API server listens: the real node's bridge address (pods reach it
        there), else loopback."""
        return NODE_IP if self.real_node else "127.0.0.1"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.api_port}"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        tools = self.tools or find_tools()
        self.tools = tools
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.procs = Procs(self.logs)
        deadline = time.monotonic() + timeout
        try:
            if self.real_node:
                self.real_node.create_bridge()
            self.pki = make_pki(
                self.workdir / "pki", extra_ips=(NODE_IP,) if self.real_node else ()
            )
            self._start_etcd(tools, deadline)
            self._start_apiserver(tools, deadline)
            self._write_kubeconfig()
            self._kubectl("apply", "--server-side", "-f", str(tools.jobset_crds))
            self._wait_jobset_api(deadline)
            self._start_kcm(tools)
            self._start_scheduler(tools)
            self._start_jobset(tools, deadline)
            if self.real_node:
                self.real_node.start(self.server, self.pki, self.kubeconfig, deadline)
            self._start_agent(deadline)
            self._wait_default_service_account(deadline)
        except BaseException:
            self.stop()
            raise
        (self.workdir / "env").write_text(
            f"KUBECONFIG={self.kubeconfig}\nARCX_E2E_KUBECONFIG={self.kubeconfig}\n"
        )

    def stop(self) -> None:
        node_problems = self.real_node.stop() if self.real_node else []
        self.procs.stop_all()
        if self.real_node:
            node_problems += self.real_node.remove_bridge()
        if node_problems:
            raise ControlPlaneError(
                "the real node left the host changed: " + "; ".join(node_problems)
            )

    def alive(self) -> dict[str, bool]:
        return self.procs.alive()

    # -- components ------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        return self.procs.spawn(name, argv, env=env, cwd=self.workdir)

    def _wait(self, proc: Proc, check: Callable[[], bool], deadline: float, what: str) -> None:
        try:
            self.procs.wait(proc, check, deadline, what)
        except ProcessError as e:
            raise ControlPlaneError(str(e)) from None

    def _start_etcd(self, tools: Tools, deadline: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        data = self.workdir / "etcd"
        proc = self._spawn(
            "etcd",
            [
                str(tools.etcd),
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(proc, lambda: _http_ok(f"{self.etcd_url}/health"), deadline, "starting etcd")

    def _start_apiserver(self, tools: Tools, deadline: float) -> None:
        assert self.pki
        pki = self.pki
        self.api_port = free_port()
        argv = [
            str(tools.kube_apiserver),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC" if self.real_node else "--authorization-mode=RBAC",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The real node's pods reach the API server through the kubernetes Service.
            "--endpoint-reconciler-type=lease"
            if self.real_node
            else "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1" if self.verbose else "--v=0",
        ]
        if self.real_node:
            argv += [
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={pki.admin_cert}",
                f"--kubelet-client-key={pki.admin_key}",
            ]
        if self.audit:
            policy = self.workdir / "audit-policy.yaml"
            policy.write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "audit.k8s.io/v1",
                        "kind": "Policy",
                        "omitStages": ["RequestReceived", "ResponseStarted"],
                        "rules": [{"level": "Metadata"}],
                    }
                )
            )
            argv += [
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=batch",
                "--audit-log-batch-max-wait=1s",
            ]
        proc = self._spawn("kube-apiserver", argv)
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._wait(
            proc,
            lambda: _http_ok(f"{self.server}/readyz", ctx),
            deadline,
            "waiting for kube-apiserver /readyz",
        )

    def _write_kubeconfig(self) -> None:
        assert self.pki
        b64 = lambda p: base64.b64encode(p.read_bytes()).decode()  # noqa: E731
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "arcx-local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "arcx-admin",
                    "user": {
                        "client-certificate-data": b64(self.pki.admin_cert),
                        "client-key-data": b64(self.pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "arcx-local", "context": {"cluster": "arcx-local", "user": "arcx-admin"}}
            ],
            "current-context": "arcx-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg))
        self.kubeconfig.chmod(0o600)

    def kubeconfig_for_token(self, token: str, path: Path, namespace: str = "default") -> Path:
        """Write a kubeconfig that authenticates with a bearer token (a ServiceAccount's)."""
        assert self.pki
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        cfg["users"] = [{"name": "token-user", "user": {"token": token}}]
        cfg["contexts"][0]["context"] = {
            "cluster": "arcx-local",
            "user": "token-user",
            "namespace": namespace,
        }
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def _kubectl(self, *args: str) -> str:
        assert self.tools
        proc = subprocess.run(
            [str(self.tools.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _wait_jobset_api(self, deadline: float) -> None:
        """Until JobSets can be listed: the CRD is Established and its storage is ready."""
        kube = Kube(self.kubeconfig)
        proc = self.procs.get("kube-apiserver")

        def ok() -> bool:
            try:
                kube.get("/apis/jobset.x-k8s.io/v1alpha2/jobsets")
                return True
            except (ApiError, OSError):
                return False

        self._wait(proc, ok, deadline, "waiting for the JobSet API")

    def _start_kcm(self, tools: Tools) -> None:
        assert self.pki
        controllers = KCM_CONTROLLERS + (REAL_NODE_CONTROLLERS if self.real_node else ())
        self._spawn(
            "kube-controller-manager",
            [
                str(tools.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={','.join(controllers)}",
                f"--service-account-private-key-file={self.pki.sa_key}",
                f"--root-ca-file={self.pki.ca_cert}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--concurrent-job-syncs=10",
            ],
        )

    def _start_scheduler(self, tools: Tools) -> None:
        self._spawn(
            "kube-scheduler",
            [
                str(tools.kube_scheduler),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
        )

    def _start_jobset(self, tools: Tools, deadline: float) -> None:
        """JobSet's webhooks are not registered with the API server; its webhook server still
        listens (controller-runtime starts it), so it gets a loopback port and our cert."""
        assert self.pki
        certdir = self.workdir / "jobset-certs"
        certdir.mkdir(exist_ok=True)
        shutil.copy(self.pki.serving_cert, certdir / "tls.crt")
        shutil.copy(self.pki.serving_key, certdir / "tls.key")
        health = free_port()
        config = self.workdir / "jobset-config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
                    "kind": "Configuration",
                    "leaderElection": {"leaderElect": False},
                    "internalCertManagement": {"enable": False},
                    "webhook": {"port": free_port(), "host": "127.0.0.1", "certDir": str(certdir)},
                    "metrics": {"bindAddress": "0"},
                    "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
                    "clientConnection": {"qps": 200, "burst": 400},
                }
            )
        )
        proc = self._spawn(
            "jobset",
            [str(tools.jobset), f"--config={config}", f"--kubeconfig={self.kubeconfig}"],
        )
        self._wait(
            proc,
            lambda: _http_ok(f"http://127.0.0.1:{health}/readyz"),
            deadline,
            "waiting for the JobSet controller /readyz",
        )

    def _start_agent(self, deadline: float) -> None:
        """Beside a real node, the fake TPU nodes (hack/cluster/fakenodes.py); else the
        process-running node agent with its CPU and TPU nodes."""
        specs = self.nodes
        if specs is None:
            specs = TPU_NODES if self.real_node else AGENT_NODES
        if not specs:
            return
        nodes = self.workdir / "nodes.json"
        nodes.write_text(json.dumps(specs))
        ready = self.workdir / "agent.ready"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m"]
        if self.real_node:
            name = "fake-nodes"
            argv += ["hack.cluster.fakenodes"]
        else:
            name = "node-agent"
            argv += ["hack.cluster.nodeagent", f"--workdir={self.workdir / 'agent'}"]
        argv += [f"--kubeconfig={self.kubeconfig}", f"--nodes={nodes}", f"--ready-file={ready}"]
        proc = self._spawn(name, argv, env={"PYTHONPATH": _pythonpath()})
        self._wait(proc, ready.exists, deadline, f"waiting for the {name} to register nodes")

    def _wait_default_service_account(self, deadline: float) -> None:
        """Pods are refused until the namespace's ``default`` ServiceAccount exists."""
        proc = self.procs.get("kube-controller-manager")

        kube = Kube(self.kubeconfig)

        def ok() -> bool:
            try:
                return (
                    kube.get_or_none("/api/v1/namespaces/default/serviceaccounts/default")
                    is not None
                )
            except (ApiError, OSError):
                return False

        self._wait(proc, ok, deadline, "waiting for the default ServiceAccount")


def _pythonpath() -> str:
    extra = os.environ.get("PYTHONPATH")
    return f"{REPO}{os.pathsep}{extra}" if extra else str(REPO)


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="arcx-cluster-"))
