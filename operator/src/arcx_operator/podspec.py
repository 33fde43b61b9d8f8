"""The job pod's options: volumes, mounts, env, security context, node placement.

Pure functions of the typed spec. ``spec.volumes`` and ``spec.volumeMounts`` are core/v1
Volume and VolumeMount entries passed through to the pod template after the operator's
own (the job config, and the emptyDirs a read-only root filesystem needs);
``output_condition`` warns when ``output.uri`` is a filesystem path that no mount covers
(the pods would write it into their own container filesystem, which is lost when they end).
"""

from __future__ import annotations

import posixpath
from typing import Any

from arcx_operator import constants as c
from arcx_operator.spec import JobSpec

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
    c.ENV_HOME,
    c.ENV_TMPDIR,
)
# Volume names and mount paths the operator uses itself.
RESERVED_VOLUMES: tuple[str, ...] = (c.CONFIG_VOLUME, c.HOME_VOLUME, c.TMP_VOLUME)
RESERVED_MOUNT_PATHS: tuple[str, ...] = (c.CONFIG_DIR, c.HOME_DIR, c.TMP_DIR)


def volume_source(volume: Body) -> str | None:
    """The volume's source type (``hostPath``, ``secret``, ...), None when it names none."""
    return next((s for s in VOLUME_SOURCES if s in volume), None)


def pod_volumes(spec: JobSpec, config_map: str) -> list[Body]:
    """The job config's ConfigMap volume, the writable emptyDirs, then ``spec.volumes``."""
    return [
        {"name": c.CONFIG_VOLUME, "configMap": {"name": config_map}},
        {"name": c.HOME_VOLUME, "emptyDir": {}},
        {"name": c.TMP_VOLUME, "emptyDir": {}},
        *(dict(v) for v in spec.volumes),
    ]


def container_mounts(spec: JobSpec) -> list[Body]:
    """The job config's read-only mount at /etc/arcx, HOME and TMPDIR, then ``spec.volumeMounts``."""
    own = [
        {"name": c.CONFIG_VOLUME, "mountPath": c.CONFIG_DIR, "readOnly": True},
        {"name": c.HOME_VOLUME, "mountPath": c.HOME_DIR},
        {"name": c.TMP_VOLUME, "mountPath": c.TMP_DIR},
    ]
    return [*own, *(dict(m) for m in spec.volume_mounts)]


def own_env() -> list[Body]:
    """Where the job may write on a read-only root filesystem (the image sets HOME too)."""
    return [{"name": c.ENV_HOME, "value": c.HOME_DIR}, {"name": c.ENV_TMPDIR, "value": c.TMP_DIR}]


def extra_env(spec: JobSpec) -> list[Body]:
    return [{"name": e.name, "value": e.value} for e in spec.env]


def pod_security_context() -> Body:
    """Pod Security Standard "restricted", as the image's non-root user."""
    return {
        "runAsNonRoot": True,
        "runAsUser": c.JOB_USER_ID,
        "runAsGroup": c.JOB_GROUP_ID,
        # Volumes that support ownership management become writable by the job's group;
        # only when their root is not already, so a large output volume is not re-chowned
        # on every pod start.
        "fsGroup": c.JOB_GROUP_ID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Body:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def node_selector(spec: JobSpec, own: dict[str, str]) -> dict[str, str]:
    """``spec.nodeSelector`` with the operator's own selectors (TPU placement) on top."""
    return {**spec.node_selector, **own}


def tolerations(spec: JobSpec, own: list[Body]) -> list[Body]:
    return [*own, *(dict(t) for t in spec.tolerations)]


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


def output_condition(spec: JobSpec, generation: int) -> Body:
    """Condition ``OutputMounted``: False (a warning, not an error) when ``output.uri`` is
    a filesystem path outside every ``spec.volumeMounts`` entry, or under a read-only one."""
    uri = spec.output_uri

    def cond(ok: bool, reason: c.Reason, message: str) -> Body:
        return {
            "type": c.ConditionType.OUTPUT_MOUNTED.value,
            "status": "True" if ok else "False",
            "reason": reason.name,
            "message": message,
            "observedGeneration": generation,
        }

    if "://" in uri and not uri.startswith("file://"):
        return cond(True, c.OUTPUT_OBJECT_STORE, c.OUTPUT_OBJECT_STORE.text(uri=uri))
    path = uri.removeprefix("file://")
    fix = (
        "mount a PersistentVolumeClaim, hostPath or GCS FUSE CSI volume at a parent "
        "directory with spec.volumes and spec.volumeMounts, or write to gs://"
    )
    if not path.startswith("/"):
        return cond(
            False,
            c.OUTPUT_NOT_MOUNTED,
            f"output.uri {uri} is a relative path inside the job container and is lost "
            f"when the pods end; {fix}",
        )
    path = posixpath.normpath(path)
    mount = _covering_mount(path, list(spec.volume_mounts))
    if mount is None:
        return cond(
            False,
            c.OUTPUT_NOT_MOUNTED,
            f"output.uri {uri} is not under any spec.volumeMounts mountPath: each pod "
            f"writes it to its own container filesystem, lost when the pod ends; {fix}",
        )
    where = f"volume {mount.get('name')} mounted at {mount['mountPath']}"
    if mount.get("readOnly"):
        return cond(False, c.OUTPUT_READ_ONLY, c.OUTPUT_READ_ONLY.text(uri=uri, where=where))
    return cond(True, c.OUTPUT_MOUNTED, c.OUTPUT_MOUNTED.text(uri=uri, where=where))
