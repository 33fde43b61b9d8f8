"""The pod watch: lists, then watches all pods, relisting after an error, and queues each
change as an event for the agent's single event loop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from hack.cluster.kubeapi import Kube

log = logging.getLogger("node-agent")

Event = tuple[str, Any]  # ("pod", pod) | ("gone", pod) | ("exit", (uid, code)) | ("retry", key)
WATCH_TIMEOUT_SECONDS = 120


def watch_pods(kube: Kube, events: queue.Queue[Event], stopping: threading.Event) -> None:
    rv: str | None = None
    while not stopping.is_set():
        try:
            if rv is None:
                lst = kube.get("/api/v1/pods")
                rv = lst["metadata"]["resourceVersion"]
                for pod in lst["items"]:
                    events.put(("pod", pod))
            for ev in kube.watch("/api/v1/pods", rv, timeout_seconds=WATCH_TIMEOUT_SECONDS):
                obj = ev["object"]
                if ev["type"] == "ERROR":
                    rv = None
                    break
                rv = obj["metadata"]["resourceVersion"]
                if ev["type"] in ("ADDED", "MODIFIED"):
                    events.put(("pod", obj))
                elif ev["type"] == "DELETED":
                    events.put(("gone", obj))
        except Exception as e:
            if not stopping.is_set():
                log.warning("pod watch failed (%s); relisting", e)
                rv = None
                time.sleep(1)
