"""The real test node's configuration files, rendered by pure functions from one
:class:`NodeLayout`: containerd's config, the CNI network, the kubelet's and kube-proxy's
configs, and CoreDNS's Corefile. Why each setting is what it is (the facts of these machines)
is said next to it; docs/testing.md has the whole picture."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

BRIDGE = "arcx0"
POD_CIDR = "10.88.0.0/16"
# The node's own address on the bridge: pods reach it (and only it) off their own range
# without forwarding, so the API server and CoreDNS listen here.
NODE_IP = "10.88.0.1"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "node-0"
# The /proc/sys files the kubelet and kube-proxy would set for the whole machine (kubelet:
# setupKernelTunables; kube-proxy: conntrack and route_localnet): masked in the node's private
# mount namespace so their writes land in files of the work directory, not the host's kernel.
MASKED_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/conf/all/route_localnet",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


@dataclass(frozen=True)
class NodeLayout:
    """Where everything of one node lives, and the ports it uses."""

    workdir: Path
    service_cidr: str
    kubelet_port: int
    kubelet_healthz_port: int
    proxy_healthz_port: int
    proxy_metrics_port: int
    dns_health_port: int
    sandbox_image: str
    node_name: str = NODE_NAME

    @property
    def containerd_root(self) -> Path:
        return self.workdir / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.workdir / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.workdir / "cni" / "net.d"

    @property
    def cni_state_dir(self) -> Path:
        return self.workdir / "cni" / "state"

    @property
    def kubelet_root(self) -> Path:
        return self.workdir / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.workdir / "pod-logs"

    @property
    def resolv_conf(self) -> Path:
        return self.workdir / "resolv.conf"

    @property
    def cgroup_root(self) -> str:
        """Every pod cgroup goes under this one, removed at stop."""
        return f"/arcx-{self.workdir.name}"

    @property
    def cluster_dns(self) -> str:
        """The kube-dns Service's address: the tenth of the service range, as kubeadm picks."""
        net = ipaddress.ip_network(self.service_cidr)
        return str(net.network_address + 10)


def cni_bin_dir() -> str:
    for d in CNI_BIN_DIRS:
        if (Path(d) / "bridge").exists():
            return d
    raise FileNotFoundError(
        f"no CNI plugins in {' or '.join(CNI_BIN_DIRS)}: apt-get install containernetworking-plugins"
    )


def containerd_config(layout: NodeLayout, cni_bin: str) -> str:
    """containerd 1.6 (config version 2), with state only under the work directory."""
    cri = {
        "sandbox_image": layout.sandbox_image,
        # The processes here lack CAP_SYS_RESOURCE: runc cannot lower oom_score_adj and fails
        # with "can't get final child's PID from pipe" unless the CRI keeps it at ours.
        "restrict_oom_score_adj": True,
        "enable_selinux": False,
        "disable_apparmor": True,
        "max_container_log_line_size": 16384,
        "containerd": {
            "snapshotter": "overlayfs",
            "default_runtime_name": "runc",
            "runtimes": {
                "runc": {
                    "runtime_type": "io.containerd.runc.v2",
                    # PID 1 is not systemd here: the cgroupfs driver, as the kubelet's.
                    "options": {"SystemdCgroup": False},
                }
            },
        },
        "cni": {"bin_dir": cni_bin, "conf_dir": str(layout.cni_conf_dir), "max_conf_num": 1},
        # Images are imported, never pulled: a registry is never contacted.
        "registry": {"config_path": str(layout.workdir / "containerd" / "certs.d")},
    }
    lines = [
        "version = 2",
        f"root = {json.dumps(str(layout.containerd_root))}",
        f"state = {json.dumps(str(layout.containerd_state))}",
        # Snapshotters that probe block devices or modules are of no use here.
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",'
        ' "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",'
        ' "io.containerd.tracing.processor.v1.otlp"]',
        "[grpc]",
        f"  address = {json.dumps(str(layout.containerd_socket))}",
        "[ttrpc]",
        f"  address = {json.dumps(str(layout.containerd_socket) + '.ttrpc')}",
        "[debug]",
        f"  address = {json.dumps(str(layout.containerd_socket) + '.debug')}",
        '  level = "info"',
        "[metrics]",
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {json.dumps(str(layout.workdir / 'containerd' / 'opt'))}",
    ]
    lines += _toml_tables('plugins."io.containerd.grpc.v1.cri"', cri)
    return "\n".join(lines) + "\n"


def _toml_tables(prefix: str, table: dict[str, object]) -> list[str]:
    """A nested dict of scalars as TOML tables (enough for containerd's config)."""
    out = [f"[{prefix}]"]
    subs: list[tuple[str, dict[str, object]]] = []
    for k, v in table.items():
        if isinstance(v, dict):
            subs.append((k, v))
        else:
            out.append(f"  {k} = {json.dumps(v)}")
    for k, v in subs:
        out += _toml_tables(f"{prefix}.{k}", v)
    return out


def cni_network(layout: NodeLayout) -> dict[str, object]:
    """bridge + host-local + loopback. No gateway and no masquerade: the host never forwards
    (ip_forward stays 0), pods reach each other on the bridge and the node's address; a route
    sends the service range to the node, where kube-proxy's DNAT lands on local endpoints."""
    return {
        "cniVersion": "0.4.0",
        "name": "arcx-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "rangeStart": "10.88.0.10"}]],
                    "routes": [{"dst": layout.service_cidr, "gw": NODE_IP}],
                    "dataDir": str(layout.cni_state_dir),
                },
            },
        ],
    }


def kubelet_config(layout: NodeLayout, ca_file: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": layout.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": layout.kubelet_healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        # PID 1 is not systemd; cgroups are v1 (hybrid) here.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "cgroupRoot": layout.cgroup_root,
        "cgroupsPerQOS": True,
        # No swap here, but do not refuse to start on a machine that has some.
        "failSwapOn": False,
        # Lowering our own oom_score_adj needs CAP_SYS_RESOURCE, which these processes lack.
        "oomScoreAdj": 0,
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [layout.cluster_dns],
        # Only the cluster DNS: nothing a pod resolves may leave the machine.
        "resolvConf": str(layout.resolv_conf),
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "podLogsDir": str(layout.pod_logs),
        # The images are imported once and never pulled again: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
        "registerNode": True,
        "staticPodPath": "",
        "makeIPTablesUtilChains": False,
        "protectKernelDefaults": False,
        "localStorageCapacityIsolation": True,
        "maxPods": 60,
        "nodeStatusUpdateFrequency": "2s",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }


def kube_proxy_config(layout: NodeLayout, kubeconfig: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "hostnameOverride": layout.node_name,
        "bindAddress": NODE_IP,
        "clusterCIDR": POD_CIDR,
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "healthzBindAddress": f"127.0.0.1:{layout.proxy_healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{layout.proxy_metrics_port}",
        # Leave the host's conntrack table sizes and timeouts as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {
            "localhostNodePorts": False,
            "masqueradeAll": False,
            "syncPeriod": "5s",
            "minSyncPeriod": "0s",
        },
        # Only the node's bridge address serves NodePorts, never the machine's other interfaces.
        "nodePortAddresses": [f"{NODE_IP}/32"],
    }


def corefile(layout: NodeLayout, kubeconfig: Path) -> str:
    """Cluster names from the API; every other name is NXDOMAIN (nothing is forwarded)."""
    return f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{layout.dns_health_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {NODE_IP}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def resolv_conf(layout: NodeLayout) -> str:
    return f"nameserver {layout.cluster_dns}\noptions ndots:5\n"


def dump_yaml(obj: dict[str, object]) -> str:
    return yaml.safe_dump(obj, sort_keys=False)
