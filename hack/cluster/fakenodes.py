"""Fake TPU nodes beside the real node: what no kubelet here can be. There are no TPUs on
this machine, but the TPU samples' placement (GKE's node labels, ``google.com/tpu`` capacity
and taint, one pod per host of every slice) is the scheduler's work and is tested for real.
This process registers the Node objects (hack/cluster/nodeshapes.py), keeps their Ready
condition and Leases fresh, reports the pods bound to them Running without running anything,
and completes their deletion as a kubelet would (the API server waits for the node to
confirm a graceful delete). Test-only.

``python -m hack.cluster.fakenodes --kubeconfig K --nodes nodes.json --ready-file F``
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hack.cluster.kubeapi import MERGE, ApiError, Kube, Obj, pod_path
from hack.cluster.nodeshapes import node_objects, node_status, now, now_micro

log = logging.getLogger("fake-nodes")
LEASE_NS = "kube-node-lease"
RUNTIME = "arcx-fake-node://0"


def _cond(kind: str) -> Obj:
    return {"type": kind, "status": "True", "lastTransitionTime": now(), "lastProbeTime": None}


def running_status(pod: Obj) -> Obj:
    """A pod's status as reported by a node that runs nothing: Running, ready."""
    started = pod.get("status", {}).get("startTime") or now()
    return {
        "phase": "Running",
        "startTime": started,
        "conditions": [_cond(c) for c in ("Initialized", "ContainersReady", "Ready")],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "containerID": f"{RUNTIME.split(':')[0]}://{pod['metadata']['uid']}",
                "state": {"running": {"startedAt": started}},
            }
            for c in pod["spec"]["containers"]
        ],
    }


class FakeNodes:
    def __init__(self, kube: Kube, specs: list[dict[str, Any]]) -> None:
        self.kube = kube
        self.nodes = {n["metadata"]["name"]: n for s in specs for n in node_objects(s)}
        self.stopping = threading.Event()

    def register(self) -> None:
        for name, node in self.nodes.items():
            if self.kube.get_or_none(f"/api/v1/nodes/{name}") is None:
                self.kube.create("/api/v1/nodes", {k: v for k, v in node.items() if k != "status"})
        self.heartbeat()

    def heartbeat(self) -> None:
        for name, node in self.nodes.items():
            try:
                self.kube.patch(f"/api/v1/nodes/{name}/status", node_status(node, runtime=RUNTIME))
                self._renew_lease(name)
            except (ApiError, OSError) as e:
                log.warning("heartbeat for %s failed: %s", name, e)

    def _renew_lease(self, name: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases/{name}"
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_micro()}
        if self.kube.get_or_none(path) is None:
            self.kube.create(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases",
                {"metadata": {"name": name}, "spec": spec},
            )
        else:
            self.kube.patch(path, {"spec": spec}, content_type=MERGE)

    def on_pod(self, pod: Obj) -> None:
        if pod["spec"].get("nodeName") not in self.nodes:
            return
        md = pod["metadata"]
        try:
            if md.get("deletionTimestamp"):
                self.kube.delete(
                    pod_path(md["namespace"], md["name"]),
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": md["uid"]}},
                )
            elif pod.get("status", {}).get("phase") in (None, "Pending"):
                self.kube.patch(
                    pod_path(md["namespace"], md["name"], "status"),
                    {"metadata": {"uid": md["uid"]}, "status": running_status(pod)},
                )
        except ApiError as e:
            if e.status not in (404, 409, 422):
                raise

    def run(self, ready_file: Path | None) -> None:
        self.register()
        threading.Thread(target=self._heartbeats, daemon=True).start()
        if ready_file:
            ready_file.write_text("ready\n")
        rv: str | None = None
        while not self.stopping.is_set():
            try:
                if rv is None:
                    lst = self.kube.get("/api/v1/pods")
                    rv = lst["metadata"]["resourceVersion"]
                    for pod in lst["items"]:
                        self.on_pod(pod)
                for ev in self.kube.watch("/api/v1/pods", rv, timeout_seconds=60):
                    if self.stopping.is_set():
                        break
                    if ev["type"] == "ERROR":
                        rv = None
                        break
                    rv = ev["object"]["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.on_pod(ev["object"])
            except Exception as e:
                if not self.stopping.is_set():
                    log.warning("pod watch failed (%s); relisting", e)
                    rv = None
                    time.sleep(1)

    def _heartbeats(self) -> None:
        while not self.stopping.wait(10):
            self.heartbeat()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--nodes", required=True, help="JSON file: list of node specs")
    ap.add_argument("--ready-file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    fake = FakeNodes(
        Kube(args.kubeconfig, user_agent="arcx-fake-nodes"),
        json.loads(Path(args.nodes).read_text()),
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    fake.run(Path(args.ready_file) if args.ready_file else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
