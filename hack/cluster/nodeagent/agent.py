"""The node agent's pod lifecycle: one event loop that starts each pod bound to its nodes,
restarts it by its restartPolicy, reports its status, and completes its deletion. The
pieces it composes each do one job (see this package's docstring)."""

from __future__ import annotations

import logging
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from hack.cluster.kubeapi import ApiError, Kube, Obj, pod_path
from hack.cluster.nodeagent import podstatus
from hack.cluster.nodeagent.hosts import LoopbackAddresses, pod_hostnames, write_hosts
from hack.cluster.nodeagent.nodes import Nodes
from hack.cluster.nodeagent.podenv import PodContext, process_spec
from hack.cluster.nodeagent.podrun import PodRun
from hack.cluster.nodeagent.podwatch import Event, watch_pods
from hack.cluster.nodeagent.processes import PodProcesses
from hack.cluster.nodeagent.sources import ApiSources, NotReady
from hack.cluster.nodeagent.volumes import MountPoints, materialise_volumes, mount_script
from hack.cluster.nodeshapes import now

log = logging.getLogger("node-agent")

NOT_READY_RETRY_SECONDS = 1.0
DEFAULT_GRACE_SECONDS = 30


class NodeAgent:
    def __init__(
        self,
        kube: Kube,
        nodes: list[dict[str, Any]],
        workdir: Path,
        default_entrypoint: list[str],
    ) -> None:
        self.kube = kube
        self.workdir = workdir
        self.default_entrypoint = tuple(default_entrypoint)
        self.nodes = Nodes(kube, nodes)
        self.sources = ApiSources(kube)
        self.runs: dict[str, PodRun] = {}
        self.events: queue.Queue[Event] = queue.Queue()
        self.stopping = threading.Event()
        self.addresses = LoopbackAddresses()
        self.mount_points = MountPoints()
        self.processes = PodProcesses(
            workdir / "pods", lambda uid, code: self.events.put(("exit", (uid, code)))
        )
        self.bin_dir = str(Path(sys.executable).parent)

    def run(self, ready_file: Path | None) -> None:
        self.nodes.register()
        threading.Thread(
            target=self.nodes.heartbeat_until, args=(self.stopping,), daemon=True
        ).start()
        threading.Thread(
            target=watch_pods, args=(self.kube, self.events, self.stopping), daemon=True
        ).start()
        if ready_file:
            ready_file.write_text("ready\n")
        log.info("registered nodes: %s", ", ".join(self.nodes.by_name))
        while not self.stopping.is_set():
            try:
                kind, payload = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                if kind == "pod":
                    self.on_pod(payload)
                elif kind == "gone":
                    self.on_gone(payload)
                elif kind == "exit":
                    self.on_exit(*payload)
                elif kind == "retry":
                    self._retry(payload)
            except Exception:
                log.exception("handling %s event failed", kind)
        self.shutdown()

    def shutdown(self) -> None:
        for run in list(self.runs.values()):
            self.processes.kill(run.popen)
            self.mount_points.release(run.uid)

    # -- pod events ----------------------------------------------------------------------

    def on_pod(self, pod: Obj) -> None:
        if pod["spec"].get("nodeName") not in self.nodes:
            return
        md = pod["metadata"]
        run = self.runs.get(md["uid"])
        phase = pod.get("status", {}).get("phase")
        if md.get("deletionTimestamp"):
            if run is None:
                if phase not in ("Succeeded", "Failed"):
                    self._patch_status(pod, {"phase": "Failed"})
                self._final_delete(pod)
            elif run.running:
                if not run.terminating and run.popen is not None:
                    run.terminating = True
                    grace = md.get("deletionGracePeriodSeconds")
                    if grace is None:
                        grace = pod["spec"].get(
                            "terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS
                        )
                    self.processes.stop_after(run.popen, float(grace))
            elif run.tpu or run.exit_code is not None:
                self._finish(run, pod)
            return
        if run is not None or phase in ("Succeeded", "Failed"):
            return
        self.start_pod(pod)

    def on_gone(self, pod: Obj) -> None:
        run = self.runs.pop(pod["metadata"]["uid"], None)
        if run:
            self.processes.kill(run.popen)
            self.processes.forget(run.popen)
            self.mount_points.release(run.uid)
            write_hosts(self.runs.values())

    def on_exit(self, uid: str, code: int) -> None:
        run = self.runs.get(uid)
        if run is None:
            return
        run.exit_code = code
        self.processes.forget(run.popen)
        pod = self.kube.get_or_none(pod_path(run.namespace, run.name))
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        policy = pod["spec"].get("restartPolicy", "Always")
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        if not deleting and (policy == "Always" or (policy == "OnFailure" and code != 0)):
            run.restarts += 1
            run.exit_code = None
            self._launch(run, pod)
            return
        self._finish(run, pod)

    def _retry(self, key: tuple[str, str]) -> None:
        pod = self.kube.get_or_none(pod_path(*key))
        if pod is not None:
            self.on_pod(pod)

    def _later(self, pod: Obj, delay: float) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        threading.Timer(delay, lambda: self.events.put(("retry", key))).start()

    # -- start / finish ------------------------------------------------------------------

    def start_pod(self, pod: Obj) -> None:
        md = pod["metadata"]
        node = pod["spec"]["nodeName"]
        pod_dir = self.workdir / "pods" / f"{md['namespace']}_{md['name']}_{md['uid'][:8]}"
        ip = self.addresses.allocate({r.ip for r in self.runs.values()})
        tpu = self.nodes.has_tpu(node)
        run = PodRun(md["uid"], md["namespace"], md["name"], ip, node, pod_dir, tpu)
        if tpu:  # placement is all a fake TPU node can show: reported Running, never run
            self.runs[run.uid] = run
            run.started_at = now()
            self._patch_status(pod, podstatus.running_status(run, pod))
            return
        try:
            run.volumes = materialise_volumes(pod, pod_dir, self.sources)
        except NotReady as e:
            log.info("pod %s/%s waits: %s", md["namespace"], md["name"], e)
            self._later(pod, NOT_READY_RETRY_SECONDS)
            return
        self.runs[run.uid] = run
        run.hostnames = pod_hostnames(pod)
        run.hosts_file = run.dir / "hosts"
        run.dir.mkdir(parents=True, exist_ok=True)
        run.hosts_file.write_text("")
        write_hosts(self.runs.values())
        self._launch(run, pod)

    def _launch(self, run: PodRun, pod: Obj) -> None:
        ctx = PodContext(
            ip=run.ip,
            hostname=run.hostname,
            dir=run.dir,
            node_capacity=self.nodes.capacity(run.node),
            bin_dir=self.bin_dir,
            default_entrypoint=self.default_entrypoint,
        )
        try:
            spec = process_spec(pod, ctx, self.sources)
        except (ValueError, NotReady) as e:
            log.warning("pod %s/%s cannot start: %s", run.namespace, run.name, e)
            run.exit_code = podstatus.START_ERROR_EXIT_CODE
            run.started_at = run.started_at or now()
            self._patch_status(pod, podstatus.start_error_status(run, pod, str(e)))
            return
        script = mount_script(run, pod["spec"]["containers"][0], self.mount_points)
        (run.dir / "termination-log").write_text("")
        run.popen = self.processes.launch(run.uid, spec, script, run.dir / "log")
        run.started_at = now()
        log.info(
            "started %s/%s on %s as pid %d (%s)",
            run.namespace,
            run.name,
            run.node,
            run.popen.pid,
            run.ip,
        )
        self._patch_status(pod, podstatus.running_status(run, pod))

    def _finish(self, run: PodRun, pod: Obj) -> None:
        if run.finalised:
            return
        code = run.exit_code if run.exit_code is not None else podstatus.KILLED_EXIT_CODE
        c = pod["spec"]["containers"][0]
        message = podstatus.termination_message(run.dir, c, code)
        self._patch_status(pod, podstatus.finished_status(run, pod, code, message))
        log.info("pod %s/%s finished with exit code %d", run.namespace, run.name, code)
        if pod["metadata"].get("deletionTimestamp"):
            run.finalised = True
            self._final_delete(pod)

    def _final_delete(self, pod: Obj) -> None:
        md = pod["metadata"]
        self.kube.delete(
            pod_path(md["namespace"], md["name"]),
            {"gracePeriodSeconds": 0, "preconditions": {"uid": md["uid"]}},
        )

    def _patch_status(self, pod: Obj, status: Obj) -> None:
        md = pod["metadata"]
        try:
            self.kube.patch(
                pod_path(md["namespace"], md["name"], "status"),
                {"metadata": {"uid": md["uid"]}, "status": status},
            )
        except ApiError as e:
            if e.status not in (404, 409, 422):
                raise
            log.info("status of %s/%s not updated: %s", md["namespace"], md["name"], e.message)
