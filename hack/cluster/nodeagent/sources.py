"""The API objects a pod's env and volumes are read from: ConfigMaps, Secrets and the
PersistentVolume behind a claim. A missing one that is not optional means the pod waits."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Protocol

from hack.cluster.kubeapi import Kube, Obj

log = logging.getLogger("node-agent")


class NotReady(Exception):
    """Something the pod needs (a ConfigMap, a Secret, a bound claim) does not exist yet."""


class Sources(Protocol):
    def config_map(self, namespace: str, ref: Obj) -> dict[str, str]: ...

    def secret(self, namespace: str, ref: Obj) -> dict[str, str]: ...

    def claim_path(self, namespace: str, claim: str) -> Path | None: ...


class ApiSources:
    """``Sources`` read from the API server."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def config_map(self, namespace: str, ref: Obj) -> dict[str, str]:
        cm = self.kube.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/{ref['name']}")
        if cm is None:
            if ref.get("optional"):
                return {}
            raise NotReady(f"configmap {namespace}/{ref['name']} not found")
        return dict(cm.get("data") or {})

    def secret(self, namespace: str, ref: Obj) -> dict[str, str]:
        name = ref.get("name", ref.get("secretName"))
        s = self.kube.get_or_none(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if s is None:
            if ref.get("optional"):
                return {}
            raise NotReady(f"secret {namespace}/{ref.get('name')} not found")
        return {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}

    def claim_path(self, namespace: str, claim: str) -> Path | None:
        """The directory behind a bound claim whose PersistentVolume is a hostPath or local
        volume (static provisioning: the local control plane has no provisioner)."""
        pvc = self.kube.get_or_none(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"
        )
        if pvc is None:
            raise NotReady(f"persistentvolumeclaim {namespace}/{claim} not found")
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if not pv_name or (pvc.get("status") or {}).get("phase") != "Bound":
            raise NotReady(f"persistentvolumeclaim {namespace}/{claim} is not bound")
        pv = self.kube.get_or_none(f"/api/v1/persistentvolumes/{pv_name}")
        source = (pv or {}).get("spec") or {}
        path = (source.get("hostPath") or source.get("local") or {}).get("path")
        if not path:
            log.info("persistentvolume %s is not hostPath or local; not mounted", pv_name)
            return None
        return Path(path)
