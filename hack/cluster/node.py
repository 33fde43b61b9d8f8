"""A real Kubernetes node beside the local control plane: containerd and runc (Debian's
packages), the kubelet and kube-proxy (built from the control plane's pinned Kubernetes
module), CoreDNS (from its Go module) and a test bridge with the CNI bridge plugin.

It leaves the machine as it found it. containerd, its shims and the kubelet run in one private
mount namespace (every mount they make, the pods' rootfs, volumes and netns files, vanishes
with it), where the /proc/sys files they would set for the whole machine are masked by files
of the work directory. Pod cgroups live under one root of their own, removed at stop; the
iptables chains kube-proxy adds are deleted; the bridge is removed. See docs/testing.md.

The order is the caller's (hack/cluster/controlplane.py): :meth:`RealNode.create_bridge`
before the API server (which listens on the bridge address), :meth:`RealNode.start` after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from hack.cluster import nodeconfig as nc
from hack.cluster.hostsnapshot import HostState
from hack.cluster.kubeapi import ApiError, Kube
from hack.cluster.pki import Pki, make_client_cert
from hack.cluster.procs import Procs, free_port
from hack.cluster.tools import NodeTools

if TYPE_CHECKING:
    from hack.cluster.images import Image

CGROUP_FS = Path("/sys/fs/cgroup")


class NodeError(RuntimeError):
    """A node component failed; the message names it and ends with its log tail."""


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _cgroup_hierarchies() -> list[Path]:
    """The mounted v1 hierarchies (and the v2 one where mounted at the top)."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if parts[2] in ("cgroup", "cgroup2") and parts[1].startswith(str(CGROUP_FS)):
            out.append(Path(parts[1]))
    return sorted(set(out))


def kubeconfig_for_cert(server: str, ca: Path, cert: Path, key: Path, path: Path) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "u", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "u"}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


@dataclass
class RealNode:
    workdir: Path
    tools: NodeTools
    images: list[Image]
    sandbox: Image
    service_cidr: str
    procs: Procs = field(default_factory=lambda: Procs(Path()))
    layout: nc.NodeLayout | None = None
    host: HostState | None = None
    _holder: subprocess.Popen[bytes] | None = None
    _bridge_created: bool = False
    _host_dirs: list[Path] = field(default_factory=list)

    # -- before the control plane --------------------------------------------------------

    def create_bridge(self) -> None:
        """The test bridge with the node's address; the API server then binds to it."""
        self.host = self.host or HostState.capture()
        if Path(f"/sys/class/net/{nc.BRIDGE}").exists():
            raise NodeError(
                f"a network link {nc.BRIDGE} already exists: another real node is running "
                f"here, or one was not stopped (ip link del {nc.BRIDGE})"
            )
        _run(["ip", "link", "add", nc.BRIDGE, "type", "bridge"])
        self._bridge_created = True
        _run(["ip", "addr", "add", f"{nc.NODE_IP}/16", "dev", nc.BRIDGE])
        _run(["ip", "link", "set", nc.BRIDGE, "up"])

    # -- after the control plane ---------------------------------------------------------

    def start(self, server: str, pki: Pki, admin_kubeconfig: Path, deadline: float) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs = Procs(self.workdir / "logs")
        self.layout = layout = nc.NodeLayout(
            workdir=self.workdir,
            service_cidr=self.service_cidr,
            kubelet_port=free_port(),
            kubelet_healthz_port=free_port(),
            proxy_healthz_port=free_port(),
            proxy_metrics_port=free_port(),
            dns_health_port=free_port(),
            sandbox_image=self.sandbox.ref,
        )
        certs = self.workdir / "pki"
        certs.mkdir(exist_ok=True)
        kubelet_crt, kubelet_key = make_client_cert(
            pki, f"system:node:{layout.node_name}", "system:nodes", certs / "kubelet"
        )
        proxy_crt, proxy_key = make_client_cert(
            pki, "system:kube-proxy", None, certs / "kube-proxy"
        )
        kubelet_kc = kubeconfig_for_cert(
            server, pki.ca_cert, kubelet_crt, kubelet_key, self.workdir / "kubelet.kubeconfig"
        )
        proxy_kc = kubeconfig_for_cert(
            server, pki.ca_cert, proxy_crt, proxy_key, self.workdir / "kube-proxy.kubeconfig"
        )
        steps: list[tuple[str, Callable[[], None]]] = [
            ("configs", lambda: self._write_configs(layout, pki, admin_kubeconfig, proxy_kc)),
            ("cgroups", lambda: self._make_cgroup_root(layout)),
            ("namespace", lambda: self._start_namespace(layout)),
            ("containerd", lambda: self._start_containerd(layout, deadline)),
            *[
                (f"import {i.name}", lambda i=i: self._import(layout, i))  # type: ignore[misc]
                for i in [self.sandbox, *self.images]
            ],
            ("coredns", lambda: self._start_coredns(layout, admin_kubeconfig, deadline)),
            ("kube-dns service", lambda: self._dns_service(Kube(admin_kubeconfig), layout)),
            ("kubelet", lambda: self._start_kubelet(layout, kubelet_kc)),
            ("kube-proxy", lambda: self._start_kube_proxy(layout, deadline)),
            ("node Ready", lambda: self._wait_node_ready(Kube(admin_kubeconfig), deadline)),
        ]
        # How long each step took, for the docs and for a slow start's diagnosis.
        self.procs.logs.mkdir(parents=True, exist_ok=True)
        with (self.procs.logs / "start-times.txt").open("w") as times:
            for what, step in steps:
                t = time.monotonic()
                step()
                times.write(f"{what}\t{time.monotonic() - t:.1f}s\n")
                times.flush()

    def _write_configs(
        self, layout: nc.NodeLayout, pki: Pki, admin_kc: Path, proxy_kc: Path
    ) -> None:
        for d in (layout.cni_conf_dir, layout.cni_state_dir, layout.kubelet_root, layout.pod_logs):
            d.mkdir(parents=True, exist_ok=True)
        (layout.workdir / "containerd").mkdir(exist_ok=True)
        (self.workdir / "containerd.toml").write_text(
            nc.containerd_config(layout, nc.cni_bin_dir())
        )
        (layout.cni_conf_dir / "10-arcx.conflist").write_text(
            json.dumps(nc.cni_network(layout), indent=2)
        )
        (self.workdir / "kubelet.yaml").write_text(
            nc.dump_yaml(nc.kubelet_config(layout, pki.ca_cert))
        )
        (self.workdir / "kube-proxy.yaml").write_text(
            nc.dump_yaml(nc.kube_proxy_config(layout, proxy_kc))
        )
        (self.workdir / "Corefile").write_text(nc.corefile(layout, admin_kc))
        layout.resolv_conf.write_text(nc.resolv_conf(layout))

    def _make_cgroup_root(self, layout: nc.NodeLayout) -> None:
        """The kubelet wants its cgroupRoot to exist in every hierarchy; cpuset children
        start empty in v1, so they get their parent's CPUs and memory nodes."""
        for h in _cgroup_hierarchies():
            d = h / layout.cgroup_root.lstrip("/")
            d.mkdir(exist_ok=True)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if (h / f).exists():
                    (d / f).write_text((h / f).read_text())

    def _start_namespace(self, layout: nc.NodeLayout) -> None:
        """A process holding the private mount namespace, with the masks and the scratch
        mounts in place; containerd, the kubelet and kube-proxy join it with nsenter."""
        masks = self.workdir / "masked-sysctls"
        lines = ["set -e"]
        for name in nc.MASKED_SYSCTLS:
            src = Path("/proc/sys") / name
            if not src.exists():
                continue
            f = masks / name.replace("/", ".")
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(src.read_text())
            lines.append(f"mount --bind {f} {src}")
        # Paths containerd, runc and the kubelet use whatever they are told: private tmpfs
        # here, so nothing of theirs stays on the host.
        for d in (Path("/run/containerd"), Path("/run/netns"), Path("/var/log/containers")):
            if not d.exists():
                d.mkdir(parents=True)
                self._host_dirs.append(d)
            lines.append(f"mount -t tmpfs -o mode=0755 tmpfs {d}")
        ready = self.workdir / "namespace.ready"
        lines.append(f"touch {ready}")
        lines.append("exec sleep infinity")
        script = self.workdir / "namespace.sh"
        script.write_text("\n".join(lines) + "\n")
        self._holder = self.procs.spawn(
            "namespace", ["unshare", "--mount", "--propagation", "private", "/bin/sh", str(script)]
        ).popen
        proc = self.procs.get("namespace")
        self.procs.wait(proc, ready.exists, time.monotonic() + 30, "setting up the mount namespace")

    def _in_namespace(self, argv: list[str]) -> list[str]:
        assert self._holder
        return ["nsenter", f"--target={self._holder.pid}", "--mount", "--", *argv]

    def _start_containerd(self, layout: nc.NodeLayout, deadline: float) -> None:
        proc = self.procs.spawn(
            "containerd",
            self._in_namespace(["containerd", f"--config={self.workdir / 'containerd.toml'}"]),
        )
        self.procs.wait(
            proc,
            lambda: self._ctr("version", check=False).returncode == 0,
            deadline,
            "waiting for containerd",
        )

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.layout
        return _run(
            ["ctr", f"--address={self.layout.containerd_socket}", "--namespace=k8s.io", *args],
            check=check,
        )

    def _import(self, layout: nc.NodeLayout, image: Image) -> None:
        self._ctr("images", "import", str(image.archive))
        listed = self._ctr("images", "ls", "-q").stdout.split()
        if image.ref not in listed:
            raise NodeError(
                f"imported {image.archive} but containerd lists no {image.ref}: {listed}"
            )

    def _start_coredns(self, layout: nc.NodeLayout, admin_kc: Path, deadline: float) -> None:
        proc = self.procs.spawn(
            "coredns", [str(self.tools.coredns), "-conf", str(self.workdir / "Corefile")]
        )
        self.procs.wait(
            proc,
            lambda: _http_ok(f"http://127.0.0.1:{layout.dns_health_port}/health"),
            deadline,
            "waiting for CoreDNS /health",
        )

    def _dns_service(self, kube: Kube, layout: nc.NodeLayout) -> None:
        """kube-dns as on any cluster, its endpoint the node address CoreDNS listens on (a
        Service without a selector, so its EndpointSlice is ours to write)."""
        ports = [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ]
        kube.create(
            "/api/v1/namespaces/kube-system/services",
            {
                "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
                "spec": {"clusterIP": layout.cluster_dns, "ports": ports},
            },
        )
        kube.create(
            "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices",
            {
                "metadata": {
                    "name": "kube-dns-node",
                    "labels": {
                        "kubernetes.io/service-name": "kube-dns",
                        "endpointslice.kubernetes.io/managed-by": "arcx-test-node",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [nc.NODE_IP], "conditions": {"ready": True}}],
                "ports": ports,
            },
        )

    def _start_kubelet(self, layout: nc.NodeLayout, kubeconfig: Path) -> None:
        self.procs.spawn(
            "kubelet",
            self._in_namespace(
                [
                    str(self.tools.kubelet),
                    f"--config={self.workdir / 'kubelet.yaml'}",
                    f"--kubeconfig={kubeconfig}",
                    f"--root-dir={layout.kubelet_root}",
                    f"--cert-dir={self.workdir / 'kubelet-certs'}",
                    f"--hostname-override={layout.node_name}",
                    f"--node-ip={nc.NODE_IP}",
                    "--v=1",
                ]
            ),
        )

    def _start_kube_proxy(self, layout: nc.NodeLayout, deadline: float) -> None:
        proc = self.procs.spawn(
            "kube-proxy",
            self._in_namespace(
                [str(self.tools.kube_proxy), f"--config={self.workdir / 'kube-proxy.yaml'}"]
            ),
        )
        self.procs.wait(
            proc,
            lambda: _http_ok(f"http://127.0.0.1:{layout.proxy_healthz_port}/healthz"),
            deadline,
            "waiting for kube-proxy /healthz",
        )

    def _wait_node_ready(self, kube: Kube, deadline: float) -> None:
        assert self.layout
        name = self.layout.node_name

        def ready() -> bool:
            try:
                node = kube.get_or_none(f"/api/v1/nodes/{name}")
            except (ApiError, OSError):
                return False
            conds = (node or {}).get("status", {}).get("conditions") or []
            taints = (node or {}).get("spec", {}).get("taints") or []
            ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
            return ok and not any(t["key"].startswith("node.kubernetes.io/") for t in taints)

        self.procs.wait(
            self.procs.get("kubelet"), ready, deadline, f"waiting for node {name} Ready"
        )

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop everything and put the host back; returns what could not be put back."""
        problems: list[str] = []
        for name in ("kube-proxy", "kubelet", "coredns"):
            self.procs.stop(name)
        if self.layout:
            self._kill_cgroups(self.layout, problems)
        self.procs.stop("containerd")
        self._kill_namespace()
        self.procs.stop_all()
        if self.layout:
            self._remove_cgroups(self.layout, problems)
        if self.host:
            problems += self.host.restore_iptables()
        return problems

    def remove_bridge(self) -> list[str]:
        """After the control plane stopped: the bridge and the host directories go; returns
        every way the host differs from how the node found it."""
        problems: list[str] = []
        if self._bridge_created:
            _run(["ip", "link", "del", nc.BRIDGE], check=False)
            self._bridge_created = False
        for d in reversed(self._host_dirs):
            try:
                d.rmdir()
            except OSError as e:
                problems.append(f"could not remove {d}: {e}")
        self._host_dirs.clear()
        if self.host:
            problems += self.host.differences()
        return problems

    def _cgroup_dirs(self, layout: nc.NodeLayout) -> list[Path]:
        """Every cgroup under the node's root, deepest first."""
        out: list[Path] = []
        for h in _cgroup_hierarchies():
            root = h / layout.cgroup_root.lstrip("/")
            if root.exists():
                out += [Path(dp) for dp, _, _ in os.walk(root)]
        return sorted(out, key=lambda p: len(p.parts), reverse=True)

    def _kill_cgroups(self, layout: nc.NodeLayout, problems: list[str]) -> None:
        """SIGKILL every container process (they are in the node's cgroups, in mount
        namespaces of their own, so only the cgroups find them all)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = set()
            for d in self._cgroup_dirs(layout):
                with contextlib.suppress(OSError):
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        problems.append("container processes survived SIGKILL for 20s")

    def _kill_namespace(self) -> None:
        """containerd's shims outlive it by design: kill what is left in the namespace."""
        if not self._holder:
            return
        try:
            ns = os.readlink(f"/proc/{self._holder.pid}/ns/mnt")
        except OSError:
            return
        for _ in range(50):
            left = []
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or int(entry) == self._holder.pid:
                    continue
                try:
                    if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                        left.append(int(entry))
                except OSError:
                    continue
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def _remove_cgroups(self, layout: nc.NodeLayout, problems: list[str]) -> None:
        for _ in range(50):
            left = []
            for d in self._cgroup_dirs(layout):
                try:
                    d.rmdir()
                except OSError:
                    left.append(d)
            if not left:
                return
            time.sleep(0.1)
        problems.append(f"cgroups left behind: {[str(p) for p in left[:5]]}")


def _http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
