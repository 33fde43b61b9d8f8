"""Where the control-plane binaries are: ``ARCX_*`` environment variables, else the cache that
``hack/tools/build.sh`` fills (asked with ``--print-env``, which builds what is missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "tools" / "build.sh"

_FIELDS = {
    "etcd": "ARCX_ETCD",
    "kube_apiserver": "ARCX_KUBE_APISERVER",
    "kube_controller_manager": "ARCX_KUBE_CONTROLLER_MANAGER",
    "kube_scheduler": "ARCX_KUBE_SCHEDULER",
    "kubectl": "ARCX_KUBECTL",
    "jobset": "ARCX_JOBSET",
    "jobset_crds": "ARCX_JOBSET_CRDS",
    "helm": "ARCX_HELM",
}


# The real node's binaries: built like the control plane's, so in the same env lines.
_NODE_FIELDS = {
    "kubelet": "ARCX_KUBELET",
    "kube_proxy": "ARCX_KUBE_PROXY",
    "coredns": "ARCX_COREDNS",
}
# And what Debian's packages provide (containerd, runc, containernetworking-plugins).
NODE_PACKAGES = {"containerd": "containerd", "runc": "runc", "ctr": "containerd"}


class ToolsMissing(RuntimeError):
    """The binaries are not built; the message says which command builds them."""


@dataclass(frozen=True)
class Tools:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    jobset: Path
    jobset_crds: Path
    helm: Path

    def env(self) -> dict[str, str]:
        return {var: str(getattr(self, field)) for field, var in _FIELDS.items()}


@dataclass(frozen=True)
class NodeTools:
    kubelet: Path
    kube_proxy: Path
    coredns: Path


def _parse_env_lines(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("ARCX_"):
            out[key] = value
    return out


def find_tools(*, build: bool = False) -> Tools:
    """Locate every binary. With ``build``, run build.sh to build what is missing (minutes
    on a cold cache); without it, a missing binary raises :class:`ToolsMissing`."""
    values = {var: os.environ[var] for var in _FIELDS.values() if os.environ.get(var)}
    if len(values) < len(_FIELDS):
        if not build:
            check = subprocess.run([str(BUILD_SCRIPT), "--check"], capture_output=True, text=True)
            if check.returncode != 0:
                raise ToolsMissing(
                    f"control-plane binaries are not built ({check.stderr.strip()}); "
                    f"run {BUILD_SCRIPT.relative_to(REPO)} first (a cold build takes minutes)"
                )
        proc = subprocess.run(
            [str(BUILD_SCRIPT), "--print-env"], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ToolsMissing(f"{BUILD_SCRIPT} failed:\n{proc.stderr[-4000:]}")
        values = {**_parse_env_lines(proc.stdout), **values}
    paths = {field: Path(values[var]) for field, var in _FIELDS.items()}
    for field, p in paths.items():
        if not p.exists():
            raise ToolsMissing(f"{_FIELDS[field]}={p} does not exist; run {BUILD_SCRIPT}")
    return Tools(**paths)


def find_node_tools() -> NodeTools:
    """The real node's binaries (built by build.sh) and packages (on PATH); raises
    :class:`ToolsMissing` naming what to build or install."""
    missing = sorted({pkg for cmd, pkg in NODE_PACKAGES.items() if not shutil.which(cmd)})
    if missing:
        raise ToolsMissing(
            f"the real node needs Debian packages: apt-get install {' '.join(missing)}"
        )
    values = {var: os.environ[var] for var in _NODE_FIELDS.values() if os.environ.get(var)}
    if len(values) < len(_NODE_FIELDS):
        proc = subprocess.run(
            [str(BUILD_SCRIPT), "--print-env"], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ToolsMissing(f"{BUILD_SCRIPT} failed:\n{proc.stderr[-4000:]}")
        values = {**_parse_env_lines(proc.stdout), **values}
    paths = {field: Path(values.get(var, "")) for field, var in _NODE_FIELDS.items()}
    for field, p in paths.items():
        if not p.is_file():
            raise ToolsMissing(f"{_NODE_FIELDS[field]}={p} does not exist; run {BUILD_SCRIPT}")
    return NodeTools(**paths)
