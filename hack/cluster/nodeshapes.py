"""The Node shapes the local cluster registers without a kubelet: fake TPU node pools that fit
the TPU samples (v5e 4x4 spot: 4 hosts x 4 chips; v4 2x2x4: 4 hosts x 4 chips per slice, four
slices), plus decoys the samples must avoid (on-demand v5e, a v4 pool of another topology),
and the process-running node agent's CPU nodes. Pure data and pure functions."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

KUBE_VERSION = "v1.34.4"
TPU_RESOURCE = "google.com/tpu"
Obj = dict[str, Any]


def _tpu_pool(
    pool: str, accelerator: str, topology: str, hosts: int, spot: bool = False
) -> dict[str, object]:
    return {
        "kind": "tpu",
        "pool": pool,
        "accelerator": accelerator,
        "topology": topology,
        "hosts": hosts,
        "chips": 4,
        "spot": spot,
    }


TPU_NODES: list[dict[str, object]] = [
    _tpu_pool("v5e-4x4-spot", "tpu-v5-lite-podslice", "4x4", 4, spot=True),
    _tpu_pool("v5e-4x4-ondemand", "tpu-v5-lite-podslice", "4x4", 4),
    *[_tpu_pool(f"v4-2x2x4-{i}", "tpu-v4-podslice", "2x2x4", 4) for i in range(4)],
    _tpu_pool("v4-2x2x2", "tpu-v4-podslice", "2x2x2", 2),
]
# The process-running node agent's nodes: two CPU nodes and the TPU pools.
AGENT_NODES: list[dict[str, object]] = [
    {"kind": "cpu", "name": "cpu-0"},
    {"kind": "cpu", "name": "cpu-1"},
    *TPU_NODES,
]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_objects(spec: dict[str, Any]) -> list[Obj]:
    """The Node objects for one entry of a node list."""
    if spec["kind"] == "cpu":
        name = str(spec["name"])
        return [
            _node(
                name,
                labels={},
                capacity={
                    "cpu": str(spec.get("cpu", 16)),
                    "memory": str(spec.get("memory", "64Gi")),
                },
                taints=[],
            )
        ]
    pool = str(spec["pool"])
    labels = {
        "cloud.google.com/gke-nodepool": pool,
        "cloud.google.com/gke-tpu-accelerator": str(spec["accelerator"]),
        "cloud.google.com/gke-tpu-topology": str(spec["topology"]),
    }
    if spec.get("spot"):
        labels["cloud.google.com/gke-spot"] = "true"
    taints = [{"key": TPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]
    return [
        _node(
            f"gke-{pool}-{i}",
            labels=labels,
            capacity={"cpu": "200", "memory": "400Gi", TPU_RESOURCE: str(spec["chips"])},
            taints=taints,
        )
        for i in range(int(spec["hosts"]))
    ]


def _node(name: str, labels: dict[str, str], capacity: dict[str, str], taints: list[Obj]) -> Obj:
    capacity = {"pods": "110", "ephemeral-storage": "100Gi", **capacity}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "arcx.dev/test-node": "true",
                **labels,
            },
        },
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def node_status(node: Obj, address: str = "127.0.0.1", runtime: str = "arcx-node-agent://0") -> Obj:
    t = now()
    return {
        "status": {
            "capacity": node["status"]["capacity"],
            "allocatable": node["status"]["allocatable"],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": node["metadata"]["name"]},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "arcx test node is posting ready status",
                    "lastHeartbeatTime": t,
                    "lastTransitionTime": t,
                },
                *[
                    {
                        "type": c,
                        "status": "False",
                        "reason": f"KubeletHasNo{c}",
                        "lastHeartbeatTime": t,
                        "lastTransitionTime": t,
                    }
                    for c in ("MemoryPressure", "DiskPressure", "PIDPressure")
                ],
            ],
            "nodeInfo": {
                "kubeletVersion": KUBE_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": runtime,
                "osImage": "arcx test node",
                "kernelVersion": os.uname().release,
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    }
