"""What the real node may change on the host, recorded before it starts and put back after it
stops: iptables chains (kube-proxy's and the kubelet's), network links (the test bridge, pod
veths), cgroups under the node's own root, mounts, and the sysctls it must not change. Pure
diffing lives here; the node (hack/cluster/node.py) calls it at its edges."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_IPTABLES = ("iptables", "ip6tables")
WATCHED_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


def _save(binary: str) -> str:
    try:
        proc = subprocess.run([f"{binary}-save"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def _chains(save: str) -> dict[str, set[str]]:
    """``{table: {chain, ...}}`` of an iptables-save text: user-defined chains only (a
    built-in chain has a policy, and can be neither added nor deleted)."""
    out: dict[str, set[str]] = {}
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
            out.setdefault(table, set())
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            if policy == "-":
                out.setdefault(table, set()).add(name)
    return out


def cleanup_script(before: str, after: str) -> str:
    """An ``iptables-restore --noflush`` script that deletes every chain in ``after`` that
    ``before`` did not have, and every rule that jumps to one: the host's own rules stay."""
    old, new = _chains(before), _chains(after)
    lines: list[str] = []
    table = ""
    added: set[str] = set()
    deletes: dict[str, list[str]] = {}
    for line in after.splitlines():
        if line.startswith("*"):
            table = line[1:]
            added = new.get(table, set()) - old.get(table, set())
            deletes.setdefault(table, [])
        elif line.startswith("-A ") and added:
            chain = line.split()[1]
            target = re.search(r"\s-[jg]\s+(\S+)", line)
            if chain not in added and target and target.group(1) in added:
                deletes[table].append("-D " + line[3:])
    for tbl, chains in new.items():
        gone = sorted(chains - old.get(tbl, set()))
        if not gone and not deletes.get(tbl):
            continue
        lines.append(f"*{tbl}")
        lines += deletes.get(tbl, [])
        lines += [f"-F {c}" for c in gone]
        lines += [f"-X {c}" for c in gone]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else ""


def _nft_tables() -> set[str]:
    """``family name`` of every nftables table (iptables-nft makes its tables on first use)."""
    try:
        proc = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return set()
    return {line.removeprefix("table ").strip() for line in proc.stdout.splitlines() if line}


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _mounts() -> list[str]:
    return [
        " ".join(line.split()[:3]) for line in Path("/proc/self/mounts").read_text().splitlines()
    ]


def _sysctls() -> dict[str, str]:
    out = {}
    for name in WATCHED_SYSCTLS:
        with contextlib.suppress(OSError):
            out[name] = (Path("/proc/sys") / name).read_text().strip()
    return out


@dataclass
class HostState:
    """The host as the node found it."""

    iptables: dict[str, str]
    nft_tables: set[str]
    links: set[str]
    mounts: list[str]
    sysctls: dict[str, str]

    @classmethod
    def capture(cls) -> HostState:
        return cls({b: _save(b) for b in _IPTABLES}, _nft_tables(), _links(), _mounts(), _sysctls())

    def restore_iptables(self) -> list[str]:
        """Remove the chains added since the capture; returns what could not be removed."""
        errors = []
        for binary, before in self.iptables.items():
            script = cleanup_script(before, _save(binary))
            if not script:
                continue
            proc = subprocess.run(
                [f"{binary}-restore", "--noflush"], input=script, capture_output=True, text=True
            )
            if proc.returncode != 0:
                errors.append(f"{binary}-restore: {proc.stderr.strip()}")
        # Tables that did not exist before hold only what was added since.
        for table in sorted(_nft_tables() - self.nft_tables):
            proc = subprocess.run(
                ["nft", "delete", "table", *table.split()], capture_output=True, text=True
            )
            if proc.returncode != 0:
                errors.append(f"nft delete table {table}: {proc.stderr.strip()}")
        return errors

    def differences(self) -> list[str]:
        """What is different now from the capture (empty when the host is as it was)."""
        now = HostState.capture()
        diffs = []
        for binary in _IPTABLES:
            b, a = _chains(self.iptables[binary]), _chains(now.iptables[binary])
            for table in sorted(set(a) & set(b)):
                extra = a.get(table, set()) - b.get(table, set())
                if extra:
                    diffs.append(f"{binary} {table}: chains left behind {sorted(extra)}")
        if now.nft_tables - self.nft_tables:
            diffs.append(f"nftables tables left behind: {sorted(now.nft_tables - self.nft_tables)}")
        if now.links - self.links:
            diffs.append(f"network links left behind: {sorted(now.links - self.links)}")
        left = [m for m in now.mounts if m not in self.mounts]
        if left:
            diffs.append(f"mounts left behind: {left}")
        for k, v in self.sysctls.items():
            if now.sysctls.get(k) != v:
                diffs.append(f"sysctl {k} changed: {v} -> {now.sysctls.get(k)}")
        return diffs
