"""Pod Security Admission "restricted": the job pods the operator renders and the operator's
own pod (chart and plain manifests) are admitted by a real API server in a namespace that
enforces it, and pods that break it are refused.

The pods are created with ``dryRun=All``: admission (PodSecurity is a built-in admission
plugin of kube-apiserver) runs in full, nothing is stored, so no node runs them.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from op_helpers import CHART_DIR, REPO, as_stored, load_sample

from arcx_operator import render
from arcx_operator.spec import parse_resource
from hack.cluster.kubeapi import ApiError
from hack.cluster.waiting import wait_for

pytestmark = [pytest.mark.cluster]

Body = dict[str, Any]
VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "hack/tools/versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)
SAMPLES = ["cpu-2x2.yaml", "tpu-v5e-16.yaml", "tpu-v4-multislice.yaml", "kueue-queued.yaml"]
PVC_DATA = {"name": "data", "persistentVolumeClaim": {"claimName": "arcx-data"}}


@pytest.fixture(scope="module")
def restricted(cluster: Any) -> Iterator[tuple[Any, str]]:
    name = f"psa-{uuid.uuid4().hex[:8]}"
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    cluster.kube.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
    # The ServiceAccount admission plugin wants the pods' service account to exist.
    wait_for(
        "the namespace's default ServiceAccount",
        lambda: cluster.kube.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
    )
    # The TPU samples run as their own ServiceAccount (Workload Identity on GKE).
    for sa in {load_sample(x)["spec"].get("serviceAccountName") for x in SAMPLES} - {None}:
        cluster.kube.create(
            f"/api/v1/namespaces/{name}/serviceaccounts", {"metadata": {"name": sa}}
        )
    yield cluster, name
    cluster.kube.delete(f"/api/v1/namespaces/{name}")


def _create_pod(api: tuple[Any, str], name: str, spec: Body) -> Body:
    cluster, ns = api
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    return cluster.kube.create(f"/api/v1/namespaces/{ns}/pods", pod, dryRun="All")


def _job_pod(sample: str) -> Body:
    body = as_stored(load_sample(sample))
    if "volumes" in body["spec"]:
        # hostPath is never "restricted"; the chart's default policy refuses it too.
        body["spec"]["volumes"] = [PVC_DATA]
    js = render.render_jobset(parse_resource(body))
    return copy.deepcopy(js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"])


def _refused(api: tuple[Any, str], name: str, spec: Body) -> str:
    with pytest.raises(ApiError) as err:
        _create_pod(api, name, spec)
    assert err.value.status == 403, err.value
    return err.value.message


@pytest.mark.parametrize("sample", SAMPLES)
def test_rendered_job_pods_are_admitted(restricted: tuple[Any, str], sample: str) -> None:
    made = _create_pod(restricted, f"job-{sample.split('.')[0]}", _job_pod(sample))
    assert made["spec"]["securityContext"]["runAsNonRoot"] is True
    assert made["spec"]["automountServiceAccountToken"] is False
    # The service-account admission plugin adds no token volume when automount is off.
    assert not any(v.get("projected") for v in made["spec"]["volumes"])


def test_the_control_is_not_trivial(restricted: tuple[Any, str]) -> None:
    """The same pod without its security context, or with a hostPath volume, is refused."""
    bare = _job_pod("cpu-2x2.yaml")
    del bare["securityContext"]
    for c in bare["containers"]:
        del c["securityContext"]
    message = _refused(restricted, "job-bare", bare)
    assert "violates PodSecurity" in message and "restricted" in message
    for needed in ("allowPrivilegeEscalation", "capabilities", "runAsNonRoot", "seccompProfile"):
        assert needed in message, message

    host = _job_pod("cpu-2x2.yaml")
    host["volumes"][-1] = {"name": "data", "hostPath": {"path": "/"}}
    assert "hostPath" in _refused(restricted, "job-hostpath", host)


def _operator_pod_specs(cluster: Any) -> list[tuple[str, Body]]:
    chart = cluster.helm(
        "template",
        "arcx",
        str(CHART_DIR),
        "--namespace",
        "arcx-system",
        f"--kube-version={VERSIONS['KUBE_VERSION']}",
    ).stdout
    plain = (REPO / "manifests/deployment/deployment.yaml").read_text()
    out = []
    for where, text in (("chart", chart), ("manifests", plain)):
        (deploy,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment"]
        spec = copy.deepcopy(deploy["spec"]["template"]["spec"])
        spec.pop("serviceAccountName", None)  # its ServiceAccount lives in arcx-system
        out.append((where, spec))
    return out


def test_the_operator_pod_is_admitted(restricted: tuple[Any, str]) -> None:
    cluster, _ = restricted
    for where, spec in _operator_pod_specs(cluster):
        made = _create_pod(restricted, f"operator-{where}", spec)
        assert made["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
