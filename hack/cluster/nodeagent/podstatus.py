"""Pod status as a kubelet reports it: one container-status builder for the running,
finished and failed-to-start states, the pod conditions, and the termination message
(the file the container wrote, else with FallbackToLogsOnError the tail of its output)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hack.cluster.kubeapi import Obj
from hack.cluster.nodeagent.podenv import HOST_IP
from hack.cluster.nodeagent.podrun import PodRun
from hack.cluster.nodeshapes import now

CONTAINER_ID_SCHEME = "arcx-agent"
START_ERROR_EXIT_CODE = 128
KILLED_EXIT_CODE = 137  # no exit seen (a TPU pod, or one killed): SIGKILL's 128 + 9
TERMINATION_LOG_LINES = 80
TERMINATION_LOG_BYTES = 2048
TERMINATION_MESSAGE_BYTES = 4096


def condition(kind: str, status: str, reason: str = "") -> Obj:
    c: Obj = {"type": kind, "status": status, "lastTransitionTime": now(), "lastProbeTime": None}
    if reason:
        c["reason"] = reason
    return c


def container_status(container: Obj, run: PodRun, state: Obj, *, created: bool = True) -> Obj:
    """``state`` is ``{"running": ...}`` or ``{"terminated": ...}``; ``created`` is False
    when the process never started (no container ID then)."""
    running = "running" in state
    status: Obj = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": running,
        "started": running,
        "restartCount": run.restarts,
    }
    if created:
        status["containerID"] = f"{CONTAINER_ID_SCHEME}://{run.uid}"
    status["state"] = state
    return status


def running_status(run: PodRun, pod: Obj) -> Obj:
    c = pod["spec"]["containers"][0]
    return {
        "phase": "Running",
        "podIP": run.ip,
        "podIPs": [{"ip": run.ip}],
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "startTime": pod.get("status", {}).get("startTime") or run.started_at,
        "conditions": [
            condition("PodReadyToStartContainers", "True"),
            condition("Initialized", "True"),
            condition("ContainersReady", "True"),
            condition("Ready", "True"),
        ],
        "containerStatuses": [container_status(c, run, {"running": {"startedAt": run.started_at}})],
    }


def finished_status(run: PodRun, pod: Obj, code: int, message: str) -> Obj:
    c = pod["spec"]["containers"][0]
    terminated: Obj = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": run.started_at or now(),
        "finishedAt": now(),
        "containerID": f"{CONTAINER_ID_SCHEME}://{run.uid}",
    }
    if message:
        terminated["message"] = message
    return {
        "phase": "Succeeded" if code == 0 and not run.tpu else "Failed",
        "containerStatuses": [container_status(c, run, {"terminated": terminated})],
        "conditions": [
            condition("Ready", "False", "PodCompleted"),
            condition("ContainersReady", "False", "PodCompleted"),
            condition("PodReadyToStartContainers", "False"),
        ],
    }


def start_error_status(run: PodRun, pod: Obj, message: str) -> Obj:
    c = pod["spec"]["containers"][0]
    terminated = {
        "exitCode": START_ERROR_EXIT_CODE,
        "reason": "StartError",
        "message": message,
        "startedAt": run.started_at,
        "finishedAt": now(),
    }
    state = {"terminated": terminated}
    return {
        "phase": "Failed",
        "containerStatuses": [container_status(c, run, state, created=False)],
    }


def termination_message(pod_dir: Path, container: Obj, code: int) -> str:
    msg = ""
    with contextlib.suppress(OSError):
        msg = (pod_dir / "termination-log").read_text(errors="replace")
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    if not msg and code != 0 and fallback:
        try:
            data = (pod_dir / "log").read_bytes()
        except OSError:
            data = b""
        lines = data.splitlines()[-TERMINATION_LOG_LINES:]
        msg = b"\n".join(lines)[-TERMINATION_LOG_BYTES:].decode(errors="replace")
    return msg[-TERMINATION_MESSAGE_BYTES:]
