"""Pure parts of the test node agent: downward-API fields, $(VAR) expansion, node shapes."""

from __future__ import annotations

import pytest

from hack.cluster.nodeagent import expand, field_ref
from hack.cluster.nodeshapes import node_objects

POD = {
    "metadata": {
        "name": "job-slice-1-0-abcde",
        "namespace": "ns",
        "uid": "u-1",
        "labels": {"jobset.sigs.k8s.io/job-index": "1"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
    },
    "spec": {"nodeName": "cpu-0", "serviceAccountName": "default"},
    "status": {"podIP": "127.0.1.5", "podIPs": [{"ip": "127.0.1.5"}], "hostIP": "127.0.0.1"},
}


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("metadata.name", "job-slice-1-0-abcde"),
        ("metadata.namespace", "ns"),
        ("metadata.uid", "u-1"),
        ("metadata.labels['jobset.sigs.k8s.io/job-index']", "1"),
        ("metadata.annotations['batch.kubernetes.io/job-completion-index']", "0"),
        ("metadata.labels['absent']", ""),
        ("spec.nodeName", "cpu-0"),
        ("status.podIP", "127.0.1.5"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
def test_field_ref(path: str, want: str) -> None:
    assert field_ref(POD, path) == want


def test_field_ref_rejects_unknown_paths() -> None:
    with pytest.raises(ValueError, match=r"spec\.bogus"):
        field_ref(POD, "spec.bogus")


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "x", "B": "y"}
    assert expand("$(A)-$(B)", env) == "x-y"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("plain $A", env) == "plain $A"


def test_tpu_node_pool_shape() -> None:
    nodes = node_objects(
        {
            "kind": "tpu",
            "pool": "p",
            "accelerator": "tpu-v4-podslice",
            "topology": "2x2x2",
            "hosts": 2,
            "chips": 4,
            "spot": True,
        }
    )
    assert [n["metadata"]["name"] for n in nodes] == ["gke-p-0", "gke-p-1"]
    labels = nodes[0]["metadata"]["labels"]
    assert labels["cloud.google.com/gke-tpu-topology"] == "2x2x2"
    assert labels["cloud.google.com/gke-nodepool"] == "p"
    assert labels["cloud.google.com/gke-spot"] == "true"
    assert nodes[0]["status"]["capacity"]["google.com/tpu"] == "4"
    assert nodes[0]["spec"]["taints"] == [
        {"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}
    ]


def test_cpu_node_has_no_tpu() -> None:
    (node,) = node_objects({"kind": "cpu", "name": "cpu-9"})
    assert "google.com/tpu" not in node["status"]["capacity"]
    assert "spec" not in node or not node["spec"].get("taints")
