"""A host directory shared by the tests and the pods of the real node, as a volume a
``restricted`` namespace admits: a PersistentVolume (hostPath, made by the cluster admin, as
on any node-local setup) bound to one PersistentVolumeClaim per namespace, which is what the
pods mount. Pod Security ``restricted`` forbids hostPath volumes in pods, not claims."""

from __future__ import annotations

from pathlib import Path

from hack.cluster.kubeapi import Kube, Obj
from hack.cluster.waiting import wait_for

CLAIM = "shared"
PSA_RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}


def restricted_namespace(name: str) -> Obj:
    return {"metadata": {"name": name, "labels": dict(PSA_RESTRICTED)}}


def share(kube: Kube, namespace: str, path: Path, claim: str = CLAIM) -> str:
    """Create the claim ``claim`` in ``namespace`` bound to ``path``; returns its name once
    Bound."""
    pv = f"{claim}-{namespace}"
    kube.create(
        "/api/v1/persistentvolumes",
        {
            "metadata": {"name": pv, "labels": {"arcx.dev/test-share": namespace}},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        },
    )
    kube.create(
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        {
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": pv,
                "resources": {"requests": {"storage": "10Gi"}},
            },
        },
    )
    wait_for(
        f"claim {namespace}/{claim} to be Bound",
        lambda: (
            (
                kube.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}").get(
                    "status"
                )
                or {}
            ).get("phase")
            == "Bound"
        ),
        timeout=60,
    )
    return claim


def unshare(kube: Kube, namespace: str, claim: str = CLAIM) -> None:
    """Delete the claim's PersistentVolume (the claim goes with its namespace)."""
    kube.delete(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    kube.delete(f"/api/v1/persistentvolumes/{claim}-{namespace}")


def make_namespace(kube: Kube, name: str, shared: Path | None, restricted: bool = True) -> None:
    """A namespace enforcing Pod Security ``restricted`` (unless told not to: the node
    agent's own tests use hostPath), once its default ServiceAccount exists; with
    ``shared``, the claim of that directory in it."""
    body = restricted_namespace(name) if restricted else {"metadata": {"name": name}}
    kube.create("/api/v1/namespaces", body)
    wait_for(
        "the namespace's default ServiceAccount",
        lambda: kube.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
    )
    if shared is not None:
        share(kube, name, shared)


def drop_namespace(kube: Kube, name: str, shared: bool) -> None:
    kube.delete(f"/api/v1/namespaces/{name}")
    if shared:
        kube.delete(f"/api/v1/persistentvolumes/{CLAIM}-{name}")
