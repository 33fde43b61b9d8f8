"""A pod's volumes and mounts: ConfigMap/Secret keys and emptyDirs materialised in the pod's
directory, hostPaths and claims resolved to host paths, and the shell script that
bind-mounts them (with the termination log and /etc/hosts) inside the pod's private mount
namespace. Mount targets that do not exist on the host are created there, shared by every
pod that mounts at them, and removed when the last of those pods is gone."""

from __future__ import annotations

import contextlib
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from hack.cluster.kubeapi import Obj
from hack.cluster.nodeagent.podrun import PodRun
from hack.cluster.nodeagent.sources import Sources

log = logging.getLogger("node-agent")

DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def materialise_volumes(pod: Obj, pod_dir: Path, sources: Sources) -> dict[str, Path]:
    """Each emulated volume's host directory by volume name; raises ``NotReady``."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, Path] = {}
    vroot = pod_dir / "volumes"
    for v in pod["spec"].get("volumes", []):
        name = v["name"]
        if "configMap" in v or "secret" in v:
            if "configMap" in v:
                src = v["configMap"]
                data = sources.config_map(ns, src)
            else:
                src = v["secret"]
                data = sources.secret(ns, {**src, "name": src["secretName"]})
            d = vroot / name
            d.mkdir(parents=True, exist_ok=True)
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            for it in items:
                if it["key"] in data:
                    p = d / it["path"]
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text(data[it["key"]])
            out[name] = d
        elif "emptyDir" in v:
            d = vroot / name
            d.mkdir(parents=True, exist_ok=True)
            out[name] = d
        elif "hostPath" in v:
            p = Path(v["hostPath"]["path"])
            if v["hostPath"].get("type", "") in ("", "DirectoryOrCreate"):
                p.mkdir(parents=True, exist_ok=True)
            out[name] = p
        elif "persistentVolumeClaim" in v and (
            claim := sources.claim_path(ns, v["persistentVolumeClaim"]["claimName"])
        ):
            out[name] = claim
        else:
            log.info("volume %s of %s is not emulated; not mounted", name, pod["metadata"]["name"])
    pod_dir.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class MountPoints:
    """Host paths the pods mount at, with the pods using each (by uid). A path the agent
    created is removed only when no pod uses it any more: removing a directory that is a
    mount point in another pod's namespace detaches that pod's mount (Linux >= 3.18), so
    two pods sharing a HOME emptyDir path must not lose it when the first one ends."""

    users: dict[Path, set[str]] = field(default_factory=dict)
    created: list[Path] = field(default_factory=list)

    def acquire(self, uid: str, target: Path, directory: bool) -> None:
        if not target.exists():
            if directory:
                target.mkdir(parents=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
            self.created.append(target)
        self.users.setdefault(target, set()).add(uid)

    def release(self, uid: str) -> None:
        """Drop the pod's uses; remove the created paths nobody uses, deepest first."""
        for target in list(self.users):
            self.users[target].discard(uid)
            if not self.users[target]:
                del self.users[target]
        for target in reversed(list(self.created)):
            if target in self.users:
                continue
            self.created.remove(target)
            with contextlib.suppress(OSError):
                if target.is_dir():
                    target.rmdir()
                elif target.stat().st_size == 0:
                    target.unlink()


def mount_script(run: PodRun, container: Obj, mount_points: MountPoints) -> str:
    """The shell prologue run inside ``unshare --mount --uts`` before the container's command:
    sets the hostname and bind-mounts volumes, termination log and /etc/hosts."""
    q = shlex.quote
    lines = [f"echo {q(run.hostname)} > /proc/sys/kernel/hostname"]
    for m in container.get("volumeMounts", []):
        src = run.volumes.get(m["name"])
        if src is None:
            continue
        if m.get("subPath"):
            src = src / m["subPath"]
        target = Path(m["mountPath"])
        mount_points.acquire(run.uid, target, directory=src.is_dir())
        lines.append(f"mount --bind {q(str(src))} {q(str(target))}")
        if m.get("readOnly"):
            lines.append(f"mount -o remount,bind,ro {q(str(target))}")
    tpath = Path(container.get("terminationMessagePath") or DEFAULT_TERMINATION_LOG)
    mount_points.acquire(run.uid, tpath, directory=False)
    lines.append(f"mount --bind {q(str(run.dir / 'termination-log'))} {q(str(tpath))}")
    if run.hosts_file:
        lines.append(f"mount --bind {q(str(run.hosts_file))} /etc/hosts")
    return "set -e\n" + "\n".join(lines) + "\n"
