"""Storage and pod options of the job pods: volumes, mounts, env, node placement.

Pure functions of the resource's spec. ``spec.volumes`` and ``spec.volumeMounts`` are
core/v1 Volume and VolumeMount entries passed through to the pod template next to the job
config's own volume; ``output_condition`` warns when ``output.uri`` is a filesystem path
that no mount covers (the pods would write it into their own container filesystem, which
is lost when they end).
"""

from __future__ import annotations

import posixpath
from typing import Any

from arcx_operator import constants as c

Body = dict[str, Any]

# Volume sources the CRD accepts: the first ones with a full schema, the rest free-form.
TYPED_SOURCES: tuple[str, ...] = ("persistentVolumeClaim", "hostPath", "emptyDir", "csi")
FREE_SOURCES: tuple[str, ...] = ("configMap", "secret", "nfs", "ephemeral", "projected", "image")
VOLUME_SOURCES: tuple[str, ...] = TYPED_SOURCES + FREE_SOURCES
# Environment variables the operator sets itself; spec.env may not override them.
RESERVED_ENV: tuple[str, ...] = (
    c.ENV_SLICE_INDEX,
    c.ENV_COORDINATOR,
    c.ENV_NUM_PROCESSES,
    c.ENV_PROCESS_ID,
)

COND_OUTPUT_MOUNTED = "OutputMounted"
REASON_MOUNTED = "Mounted"
REASON_OBJECT_STORE = "ObjectStore"
REASON_NOT_MOUNTED = "OutputNotMounted"
REASON_READ_ONLY = "OutputReadOnly"


def _entries(spec: Body, key: str) -> list[Body]:
    return [dict(v) for v in spec.get(key) or []]


def pod_volumes(spec: Body, config_map: str) -> list[Body]:
    """The job config's ConfigMap volume, then ``spec.volumes`` as given."""
    return [
        {"name": c.CONFIG_VOLUME, "configMap": {"name": config_map}},
        *_entries(spec, "volumes"),
    ]


def container_mounts(spec: Body) -> list[Body]:
    """The job config's read-only mount at /etc/arcx, then ``spec.volumeMounts``."""
    own = {"name": c.CONFIG_VOLUME, "mountPath": c.CONFIG_DIR, "readOnly": True}
    return [own, *_entries(spec, "volumeMounts")]


def extra_env(spec: Body) -> list[Body]:
    return [{"name": e["name"], "value": str(e.get("value", ""))} for e in spec.get("env") or []]


def node_selector(spec: Body, own: dict[str, str]) -> dict[str, str]:
    """``spec.nodeSelector`` with the operator's own selectors (TPU placement) on top."""
    return {**{str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()}, **own}


def tolerations(spec: Body, own: list[Body]) -> list[Body]:
    return [*own, *_entries(spec, "tolerations")]


def _covering_mount(path: str, mounts: list[Body]) -> Body | None:
    """The deepest mount whose mountPath is ``path`` or one of its parents."""
    best: Body | None = None
    for m in mounts:
        root = posixpath.normpath(str(m.get("mountPath", "")))
        if not root.startswith("/"):
            continue
        inside = path == root or path.startswith(root.rstrip("/") + "/")
        if inside and (best is None or len(root) > len(posixpath.normpath(best["mountPath"]))):
            best = m
    return best


def output_condition(spec: Body, generation: int) -> Body:
    """Condition ``OutputMounted``: False (a warning, not an error) when ``output.uri`` is
    a filesystem path outside every ``spec.volumeMounts`` entry, or under a read-only one."""
    uri = str((spec.get("output") or {}).get("uri") or "")

    def cond(ok: bool, reason: str, message: str) -> Body:
        return {
            "type": COND_OUTPUT_MOUNTED,
            "status": "True" if ok else "False",
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
        }

    if "://" in uri and not uri.startswith("file://"):
        return cond(True, REASON_OBJECT_STORE, f"output.uri {uri} is an object store")
    path = uri.removeprefix("file://")
    fix = (
        "mount a PersistentVolumeClaim, hostPath or GCS FUSE CSI volume at a parent "
        "directory with spec.volumes and spec.volumeMounts, or write to gs://"
    )
    if not path.startswith("/"):
        return cond(
            False,
            REASON_NOT_MOUNTED,
            f"output.uri {uri} is a relative path inside the job container and is lost "
            f"when the pods end; {fix}",
        )
    path = posixpath.normpath(path)
    mount = _covering_mount(path, _entries(spec, "volumeMounts"))
    if mount is None:
        return cond(
            False,
            REASON_NOT_MOUNTED,
            f"output.uri {uri} is not under any spec.volumeMounts mountPath: each pod "
            f"writes it to its own container filesystem, lost when the pod ends; {fix}",
        )
    where = f"volume {mount.get('name')} mounted at {mount['mountPath']}"
    if mount.get("readOnly"):
        return cond(
            False,
            REASON_READ_ONLY,
            f"output.uri {uri} is on {where} read-only; the job cannot write its output: "
            "set readOnly: false on that mount",
        )
    return cond(True, REASON_MOUNTED, f"output.uri {uri} is on {where}")
