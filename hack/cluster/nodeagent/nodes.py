"""The agent's Node objects: registered once, their Ready condition and node Lease renewed
as a kubelet's heartbeat would."""

from __future__ import annotations

import logging
import threading
from typing import Any

from hack.cluster.kubeapi import MERGE, ApiError, Kube, Obj
from hack.cluster.nodeshapes import TPU_RESOURCE, node_objects, node_status, now_micro

log = logging.getLogger("node-agent")

LEASE_NS = "kube-node-lease"
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 20


class Nodes:
    def __init__(self, kube: Kube, specs: list[dict[str, Any]]) -> None:
        self.kube = kube
        self.specs = specs
        self.by_name: dict[str, Obj] = {}

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def capacity(self, name: str) -> dict[str, str]:
        return dict(self.by_name[name]["status"]["capacity"])

    def has_tpu(self, name: str) -> bool:
        return TPU_RESOURCE in self.capacity(name)

    def register(self) -> None:
        for spec in self.specs:
            for node in node_objects(spec):
                name = node["metadata"]["name"]
                path = f"/api/v1/nodes/{name}"
                if self.kube.get_or_none(path) is None:
                    body = {k: v for k, v in node.items() if k != "status"}
                    self.kube.create("/api/v1/nodes", body)
                self.kube.patch(f"{path}/status", node_status(node))
                self.by_name[name] = node
        self.heartbeat()

    def heartbeat(self) -> None:
        for name, node in self.by_name.items():
            try:
                self.kube.patch(f"/api/v1/nodes/{name}/status", node_status(node))
                self._renew_lease(name)
            except (ApiError, OSError) as e:
                log.warning("heartbeat for %s failed: %s", name, e)

    def heartbeat_until(self, stopping: threading.Event) -> None:
        while not stopping.wait(HEARTBEAT_SECONDS):
            self.heartbeat()

    def _renew_lease(self, name: str) -> None:
        leases = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases"
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now_micro(),
        }
        if self.kube.get_or_none(f"{leases}/{name}") is None:
            self.kube.create(leases, {"metadata": {"name": name}, "spec": spec})
        else:
            self.kube.patch(f"{leases}/{name}", {"spec": spec}, content_type=MERGE)
