"""The process a pod's first container runs as, resolved as the kubelet does: env (values,
``envFrom``, downward-API fields, ConfigMap/Secret keys, resources), ``$(VAR)`` expansion of
command and args, the working directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hack.cluster.kubeapi import Obj
from hack.cluster.nodeagent.sources import Sources

HOST_IP = "127.0.0.1"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_FIELD_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def field_ref(pod: Obj, path: str) -> str:
    """Resolve a downward-API fieldRef path against a pod, as the kubelet does."""
    md, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    m = _FIELD_RE.match(path)
    if m:
        return str(md.get(m.group(1), {}).get(m.group(2), ""))
    simple = {
        "metadata.name": md.get("name", ""),
        "metadata.namespace": md.get("namespace", ""),
        "metadata.uid": md.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs", [])),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": status.get("hostIP", ""),
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldRef {path!r}")
    return str(simple[path])


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_RE.sub(sub, value)


@dataclass(frozen=True)
class PodContext:
    """What the agent adds to the pod object: where the pod runs and as what."""

    ip: str
    hostname: str
    dir: Path
    node_capacity: dict[str, str]
    bin_dir: str
    default_entrypoint: tuple[str, ...]


@dataclass(frozen=True)
class ProcessSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: str


def process_spec(pod: Obj, ctx: PodContext, sources: Sources) -> ProcessSpec:
    """Raises ``ValueError`` (an unsupported field) or ``NotReady`` (a missing source)."""
    c = pod["spec"]["containers"][0]
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {
        "PATH": f"{ctx.bin_dir}:{SYSTEM_PATH}",
        "HOME": "/root",
        "HOSTNAME": ctx.hostname,
    }
    for src in c.get("envFrom", []):
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            data = sources.config_map(namespace, src["configMapRef"])
        elif "secretRef" in src:
            data = sources.secret(namespace, src["secretRef"])
        else:
            continue
        env.update({prefix + k: v for k, v in data.items()})
    for e in c.get("env", []):
        env[e["name"]] = env_value(pod, c, e, env, ctx, sources)
    # Pods share the host's network namespace: bind the coordinator to the pod's own address
    # so two slices' coordinators do not collide on [::]:port.
    if "JAX_COORDINATOR_ADDRESS" in env and "JAX_COORDINATOR_BIND_ADDRESS" not in env:
        port = env["JAX_COORDINATOR_ADDRESS"].rsplit(":", 1)[-1]
        env["JAX_COORDINATOR_BIND_ADDRESS"] = f"{ctx.ip}:{port}"
    command = [expand(x, env) for x in c.get("command", [])] or list(ctx.default_entrypoint)
    args = [expand(x, env) for x in c.get("args", [])]
    cwd = c.get("workingDir") or str(ctx.dir)
    if not Path(cwd).is_dir():
        cwd = str(ctx.dir)
    return ProcessSpec(command + args, env, cwd)


def env_value(
    pod: Obj, c: Obj, e: Obj, env: dict[str, str], ctx: PodContext, sources: Sources
) -> str:
    """One ``env`` entry's value; earlier entries are visible to ``$(VAR)`` in ``value``."""
    if "value" in e:
        return expand(str(e["value"]), env)
    vf = e.get("valueFrom", {})
    if "fieldRef" in vf:
        status = {
            **pod.get("status", {}),
            "podIP": ctx.ip,
            "podIPs": [{"ip": ctx.ip}],
            "hostIP": HOST_IP,
        }
        return field_ref({**pod, "status": status}, vf["fieldRef"]["fieldPath"])
    namespace = pod["metadata"]["namespace"]
    if "configMapKeyRef" in vf:
        ref = vf["configMapKeyRef"]
        return sources.config_map(namespace, ref).get(ref["key"], "")
    if "secretKeyRef" in vf:
        ref = vf["secretKeyRef"]
        return sources.secret(namespace, ref).get(ref["key"], "")
    if "resourceFieldRef" in vf:
        kind, _, name = vf["resourceFieldRef"]["resource"].partition(".")
        value = c.get("resources", {}).get(kind, {}).get(name)
        return str(value if value is not None else ctx.node_capacity.get(name, "0"))
    return ""
