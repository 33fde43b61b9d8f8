"""Pod networking without network namespaces: one loopback address per pod, and per-pod
/etc/hosts files holding the DNS names a headless Service gives pods that set
hostname/subdomain (as JobSet's do), so a JobSet's pods find their JAX coordinator."""

from __future__ import annotations

import random
from collections.abc import Iterable

from hack.cluster.kubeapi import Obj
from hack.cluster.nodeagent.podrun import PodRun

BASE_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


class LoopbackAddresses:
    """Free 127.<net>.x.y addresses; <net> is random per agent so that two control planes
    on one machine (two test runs) do not hand out the same pod addresses."""

    def __init__(self) -> None:
        self.net = random.randint(1, 254)
        self.next = 0

    def allocate(self, used: set[str]) -> str:
        for _ in range(65000):
            self.next = self.next % 64515 + 1
            a, b = divmod(self.next, 254)
            ip = f"127.{self.net}.{a}.{b + 1}"
            if ip not in used:
                return ip
        raise RuntimeError("no free loopback address")


def pod_hostnames(pod: Obj) -> list[str]:
    """The pod's own hostname first, then its headless-Service names, longest first."""
    spec, md = pod["spec"], pod["metadata"]
    host = spec.get("hostname") or md["name"]
    sub = spec.get("subdomain")
    if not sub:
        return [host]
    ns = md["namespace"]
    fq = f"{host}.{sub}.{ns}.svc"
    return [host, f"{fq}.cluster.local", fq, f"{host}.{sub}.{ns}", f"{host}.{sub}"]


def hosts_text(run: PodRun, runs: Iterable[PodRun]) -> str:
    """The /etc/hosts one pod sees: itself and every other pod with Service names."""
    lines = [BASE_HOSTS, f"{run.ip}\t{' '.join(run.hostnames)}\n"]
    for other in runs:
        if other is run or len(other.hostnames) < 2:
            continue
        # Names under the pod's own namespace resolve short (the search path).
        names = other.hostnames[1:] if other.namespace == run.namespace else other.hostnames[1:3]
        lines.append(f"{other.ip}\t{' '.join(names)}\n")
    return "".join(lines)


def write_hosts(runs: Iterable[PodRun]) -> None:
    """Rewrite every running pod's /etc/hosts in place (it is bind-mounted by inode)."""
    named = [r for r in runs if r.hosts_file and r.hostnames]
    for r in named:
        assert r.hosts_file is not None
        with open(r.hosts_file, "r+") as fh:
            fh.seek(0)
            fh.write(hosts_text(r, named))
            fh.truncate()
