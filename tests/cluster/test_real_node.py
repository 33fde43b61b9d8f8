"""The real node as a pod sees it: a container of the job image, admitted by Pod Security
``restricted``, runs as uid 65532 on a read-only root filesystem, gets the downward API and
its ServiceAccount token (the API server knows it by it), reaches the API server through the ``kubernetes`` Service, resolves
cluster names through cluster DNS and nothing else, and reaches nothing outside the machine.
A pod that breaks ``restricted`` is refused."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator

import pytest

from hack.cluster.cluster import Cluster
from hack.cluster.kubeapi import ApiError, Obj, pod_path
from hack.cluster.volumes import drop_namespace, make_namespace
from hack.cluster.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PROBE = r"""
import json, os, socket, ssl, urllib.request
out = {"uid": os.getuid(), "gid": os.getgid(), "pod": os.environ.get("POD_NAME")}
try:
    open("/probe", "w")
    out["rootfs"] = "writable"
except OSError as e:
    out["rootfs"] = f"read-only ({e.errno})"
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
req = urllib.request.Request(
    f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
    headers={"Authorization": "Bearer " + open(sa + "/token").read(), "Content-Type": "application/json"},
)
try:
    ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
    review = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))
    out["self"] = review["status"]["userInfo"]["username"]
except Exception as e:
    out["self"] = f"error: {e}"
for name in ("kubernetes.default.svc.cluster.local", "kubernetes.default", "example.com"):
    try:
        out[name] = socket.gethostbyname(name)
    except OSError as e:
        out[name] = f"unresolved ({type(e).__name__})"
try:
    socket.create_connection(("1.1.1.1", 443), timeout=3)
    out["outside"] = "reached"
except OSError as e:
    out["outside"] = f"unreachable ({e.errno})"
print(json.dumps(out))
"""


def restricted_pod(name: str, image: str, script: str) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", textwrap.dedent(script)],
                    "env": [
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        }
                    ],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@pytest.fixture
def real(cluster: Cluster) -> Cluster:
    if not cluster.real_node:
        pytest.skip("tests the real node")
    return cluster


@pytest.fixture
def ns(real: Cluster) -> Iterator[str]:
    name = f"rn-{uuid.uuid4().hex[:8]}"
    make_namespace(real.kube, name, None)
    yield name
    drop_namespace(real.kube, name, False)


def test_a_restricted_pod_runs_in_a_container_and_sees_only_the_cluster(
    real: Cluster, ns: str
) -> None:
    real.kube.create(pod_path(ns), restricted_pod("probe", real.images["job-cpu"], PROBE))

    def finished() -> Obj | None:
        pod = real.kube.get(pod_path(ns, "probe"))
        return pod if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    pod = wait_for("the probe pod to finish", finished, timeout=120)
    logs = real.kubectl("logs", "-n", ns, "probe").stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    status = pod["status"]["containerStatuses"][0]
    assert status["containerID"].startswith("containerd://"), status
    seen = json.loads(logs.strip().splitlines()[-1])
    assert seen["uid"] == 65532 and seen["gid"] == 65532, seen
    assert seen["rootfs"].startswith("read-only"), seen
    assert seen["pod"] == "probe", seen
    assert seen["self"] == f"system:serviceaccount:{ns}:default", seen
    assert seen["kubernetes.default.svc.cluster.local"] == "10.0.0.1", seen
    assert seen["kubernetes.default"] == "10.0.0.1", seen
    assert seen["example.com"].startswith("unresolved"), seen
    assert seen["outside"].startswith("unreachable"), seen


def test_a_pod_that_breaks_restricted_is_refused(real: Cluster, ns: str) -> None:
    body = restricted_pod("root", real.images["job-cpu"], "print('no')")
    body["spec"]["securityContext"] = {"runAsUser": 0}
    with pytest.raises(ApiError) as e:
        real.kube.create(pod_path(ns), body)
    assert e.value.status == 403 and "restricted" in e.value.message, e.value.message
