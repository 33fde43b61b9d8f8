"""Test node agent: stands in for the kubelet and the container runtime of the local test
control plane, where no container runtime can run. Test-only; never part of the product.

What it does, as a kubelet would, through the API server:
- registers Node objects: CPU nodes, and fake TPU nodes with GKE's labels
  (``cloud.google.com/gke-tpu-accelerator``, ``-tpu-topology``, ``-nodepool``, ``-spot``),
  ``google.com/tpu`` capacity and the ``google.com/tpu`` NoSchedule taint; keeps their
  Ready condition and node Leases fresh;
- runs each pod bound to a CPU node as a local process: the first container's command
  and args (``$(VAR)`` expanded), its env with downward-API fields resolved (metadata.name,
  namespace, uid, labels[...], annotations[...], spec.nodeName, status.podIP, ...). Images
  are ignored: commands run from this Python environment (its ``bin`` first on PATH);
  a container without a command runs ``--default-entrypoint`` (``arcx``, the job image's);
- container isolation is emulated with Linux namespaces (we run as root): each pod runs
  under ``unshare --mount --uts`` with its hostname set, its volumes bind-mounted at their
  mountPaths (ConfigMap/Secret keys materialised into a per-pod directory, emptyDir a
  per-pod directory, hostPath the host path itself, a PersistentVolumeClaim the path of the
  hostPath or local PersistentVolume it is bound to) and its own ``/etc/hosts``;
- pod networking is emulated with one loopback address per pod (127.n.x.y, reported as
  status.podIP). The agent writes each pod's ``/etc/hosts`` with the DNS names a headless
  Service gives pods that set hostname/subdomain (as JobSet does), so the pods of a JobSet
  find their JAX coordinator. Since processes share the host's network namespace, a pod
  whose env sets ``JAX_COORDINATOR_ADDRESS`` also gets ``JAX_COORDINATOR_BIND_ADDRESS`` =
  its own IP and that port, so two slices' coordinators do not collide on ``[::]:port``;
- reports phase, container statuses (exit code, reason, termination message with the
  FallbackToLogsOnError policy) and conditions; on deletion sends SIGTERM, waits the grace
  period, SIGKILLs the process group, reports the terminal status and removes the pod.
  Eviction (the API's preemption path) therefore works as on a real node: the API server
  sets the ``DisruptionTarget`` condition, the agent kills the process.
- pods bound to fake TPU nodes are not executed: they are reported Running (placement is
  all that can be checked) until deleted.

Not emulated: init containers, sidecars, probes, resource limits, dynamic provisioning
(claims bind to pre-created PersistentVolumes through kube-controller-manager), projected
service-account tokens, ``kubectl logs``/``exec`` (logs are in ``<workdir>/pods/*/log``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.cluster.kubeapi import MERGE, ApiError, Kube, Obj, pod_path
from hack.cluster.nodeshapes import TPU_RESOURCE, node_objects, node_status, now, now_micro

log = logging.getLogger("node-agent")

LEASE_NS = "kube-node-lease"
TERMINATION_LOG_LINES = 80
TERMINATION_LOG_BYTES = 2048


# -- downward API and env -------------------------------------------------------------------

_FIELD_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def field_ref(pod: Obj, path: str) -> str:
    """Resolve a downward-API fieldRef path against a pod, as the kubelet does."""
    md, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    m = _FIELD_RE.match(path)
    if m:
        return str(md.get(m.group(1), {}).get(m.group(2), ""))
    simple = {
        "metadata.name": md.get("name", ""),
        "metadata.namespace": md.get("namespace", ""),
        "metadata.uid": md.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs", [])),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": status.get("hostIP", ""),
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldRef {path!r}")
    return str(simple[path])


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_RE.sub(sub, value)


# -- pod runtime ----------------------------------------------------------------------------


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    ip: str
    node: str
    dir: Path
    tpu: bool = False
    popen: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    restarts: int = 0
    exit_code: int | None = None
    terminating: bool = False
    finalised: bool = False
    hostnames: list[str] = field(default_factory=list)
    hosts_file: Path | None = None
    created_dirs: list[Path] = field(default_factory=list)
    volumes: dict[str, Path] = field(default_factory=dict)


class NodeAgent:
    def __init__(
        self,
        kube: Kube,
        nodes: list[dict[str, Any]],
        workdir: Path,
        default_entrypoint: list[str],
    ) -> None:
        self.kube = kube
        self.node_specs = nodes
        self.workdir = workdir
        self.default_entrypoint = default_entrypoint
        self.nodes: dict[str, Obj] = {}
        self.runs: dict[str, PodRun] = {}
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stopping = threading.Event()
        self.ip_next = 0
        self.ip_net = random.randint(1, 254)
        self.base_hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        self.bin_dir = str(Path(sys.executable).parent)

    # -- nodes -----------------------------------------------------------------------------

    def register_nodes(self) -> None:
        for spec in self.node_specs:
            for node in node_objects(spec):
                name = node["metadata"]["name"]
                path = f"/api/v1/nodes/{name}"
                if self.kube.get_or_none(path) is None:
                    body = {k: v for k, v in node.items() if k != "status"}
                    self.kube.create("/api/v1/nodes", body)
                self.kube.patch(f"{path}/status", node_status(node))
                self.nodes[name] = node
        self.heartbeat()

    def heartbeat(self) -> None:
        for name, node in self.nodes.items():
            try:
                self.kube.patch(f"/api/v1/nodes/{name}/status", node_status(node))
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

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(20):
            self.heartbeat()

    # -- watch -----------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        rv: str | None = None
        while not self.stopping.is_set():
            try:
                if rv is None:
                    lst = self.kube.get("/api/v1/pods")
                    rv = lst["metadata"]["resourceVersion"]
                    for pod in lst["items"]:
                        self.events.put(("pod", pod))
                for ev in self.kube.watch("/api/v1/pods", rv, timeout_seconds=120):
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        rv = None
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.events.put(("pod", obj))
                    elif ev["type"] == "DELETED":
                        self.events.put(("gone", obj))
            except Exception as e:
                if not self.stopping.is_set():
                    log.warning("pod watch failed (%s); relisting", e)
                    rv = None
                    time.sleep(1)

    def run(self, ready_file: Path | None) -> None:
        self.register_nodes()
        threading.Thread(target=self._heartbeat_loop, daemon=True).start()
        threading.Thread(target=self._watch_loop, daemon=True).start()
        if ready_file:
            ready_file.write_text("ready\n")
        log.info("registered nodes: %s", ", ".join(self.nodes))
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
            if run.popen and run.popen.poll() is None:
                _killpg(run.popen.pid, signal.SIGKILL)
            self._cleanup(run)

    # -- pod events --------------------------------------------------------------------------

    def _retry(self, key: tuple[str, str]) -> None:
        pod = self.kube.get_or_none(pod_path(*key))
        if pod is not None:
            self.on_pod(pod)

    def _later(self, pod: Obj, delay: float) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        threading.Timer(delay, lambda: self.events.put(("retry", key))).start()

    def on_pod(self, pod: Obj) -> None:
        node = pod["spec"].get("nodeName")
        if node not in self.nodes:
            return
        md = pod["metadata"]
        uid = md["uid"]
        run = self.runs.get(uid)
        phase = pod.get("status", {}).get("phase")
        if md.get("deletionTimestamp"):
            if run is None:
                if phase not in ("Succeeded", "Failed"):
                    self._patch_status(pod, {"phase": "Failed"})
                self._final_delete(pod)
            elif run.popen and run.popen.poll() is None:
                if not run.terminating:
                    run.terminating = True
                    grace = md.get("deletionGracePeriodSeconds")
                    if grace is None:
                        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
                    threading.Thread(
                        target=_terminate, args=(run.popen, float(grace)), daemon=True
                    ).start()
            elif run.tpu or run.exit_code is not None:
                self._finish(run, pod)
            return
        if run is not None or phase in ("Succeeded", "Failed"):
            return
        self.start_pod(pod)

    def on_gone(self, pod: Obj) -> None:
        run = self.runs.pop(pod["metadata"]["uid"], None)
        if run:
            if run.popen and run.popen.poll() is None:
                _killpg(run.popen.pid, signal.SIGKILL)
            self._cleanup(run)
            self._write_hosts()

    def on_exit(self, uid: str, code: int) -> None:
        run = self.runs.get(uid)
        if run is None:
            return
        run.exit_code = code
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

    # -- start / finish ----------------------------------------------------------------------

    def _alloc_ip(self) -> str:
        """A free 127.<net>.x.y address; <net> is random per agent so that two control planes
        on one machine (two test runs) do not hand out the same pod addresses."""
        used = {r.ip for r in self.runs.values()}
        for _ in range(65000):
            self.ip_next = self.ip_next % 64515 + 1
            a, b = divmod(self.ip_next, 254)
            ip = f"127.{self.ip_net}.{a}.{b + 1}"
            if ip not in used:
                return ip
        raise RuntimeError("no free loopback address")

    def start_pod(self, pod: Obj) -> None:
        md = pod["metadata"]
        node = pod["spec"]["nodeName"]
        tpu = TPU_RESOURCE in self.nodes[node]["status"]["capacity"]
        pod_dir = self.workdir / "pods" / f"{md['namespace']}_{md['name']}_{md['uid'][:8]}"
        run = PodRun(md["uid"], md["namespace"], md["name"], self._alloc_ip(), node, pod_dir, tpu)
        pod.setdefault("status", {})["podIP"] = run.ip
        pod["status"]["hostIP"] = "127.0.0.1"
        if tpu:
            self.runs[run.uid] = run
            run.started_at = now()
            self._report_running(run, pod)
            return
        try:
            volumes = self._materialise_volumes(pod, pod_dir)
        except _NotReady as e:
            log.info("pod %s/%s waits: %s", md["namespace"], md["name"], e)
            self._later(pod, 1.0)
            return
        self.runs[run.uid] = run
        run.volumes = volumes
        self._register_hostnames(run, pod)
        self._launch(run, pod)

    def _launch(self, run: PodRun, pod: Obj) -> None:
        try:
            argv, env, cwd = self._process_spec(run, pod)
        except (ValueError, _NotReady) as e:
            self._fail_to_start(run, pod, str(e))
            return
        c = pod["spec"]["containers"][0]
        mounts = self._mount_script(run, pod, c)
        term_log = run.dir / "termination-log"
        term_log.write_text("")
        log_path = run.dir / "log"
        fh = log_path.open("ab")
        script = mounts + 'exec "$@"'
        popen = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                script,
                "sh",
                *argv,
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        fh.close()
        run.popen = popen
        run.started_at = now()
        log.info(
            "started %s/%s on %s as pid %d (%s)",
            run.namespace,
            run.name,
            run.node,
            popen.pid,
            run.ip,
        )
        threading.Thread(target=self._waiter, args=(run.uid, popen), daemon=True).start()
        self._report_running(run, pod)

    def _waiter(self, uid: str, popen: subprocess.Popen[bytes]) -> None:
        rc = popen.wait()
        _killpg(popen.pid, signal.SIGKILL)  # what a container's cgroup teardown would do
        code = 128 - rc if rc < 0 else rc
        self.events.put(("exit", (uid, code)))

    def _fail_to_start(self, run: PodRun, pod: Obj, message: str) -> None:
        log.warning("pod %s/%s cannot start: %s", run.namespace, run.name, message)
        run.exit_code = 128
        run.started_at = run.started_at or now()
        c = pod["spec"]["containers"][0]
        status = {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "ready": False,
            "restartCount": run.restarts,
            "state": {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": message,
                    "startedAt": run.started_at,
                    "finishedAt": now(),
                }
            },
        }
        self._patch_status(pod, {"phase": "Failed", "containerStatuses": [status]})

    def _finish(self, run: PodRun, pod: Obj) -> None:
        if run.finalised:
            return
        c = pod["spec"]["containers"][0]
        code = run.exit_code if run.exit_code is not None else 137
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        terminated: Obj = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": run.started_at or now(),
            "finishedAt": now(),
            "containerID": f"arcx-agent://{run.uid}",
        }
        message = self._termination_message(run, c, code)
        if message:
            terminated["message"] = message
        status = {
            "phase": "Succeeded" if code == 0 and not run.tpu else "Failed",
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": run.restarts,
                    "containerID": f"arcx-agent://{run.uid}",
                    "state": {"terminated": terminated},
                }
            ],
            "conditions": [
                _cond("Ready", "False", "PodCompleted"),
                _cond("ContainersReady", "False", "PodCompleted"),
                _cond("PodReadyToStartContainers", "False"),
            ],
        }
        self._patch_status(pod, status)
        log.info("pod %s/%s finished with exit code %d", run.namespace, run.name, code)
        if deleting:
            run.finalised = True
            self._final_delete(pod)

    def _termination_message(self, run: PodRun, c: Obj, code: int) -> str:
        msg = ""
        with contextlib.suppress(OSError):
            msg = (run.dir / "termination-log").read_text(errors="replace")
        if not msg and code != 0 and c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            try:
                data = (run.dir / "log").read_bytes()
            except OSError:
                data = b""
            lines = data.splitlines()[-TERMINATION_LOG_LINES:]
            msg = b"\n".join(lines)[-TERMINATION_LOG_BYTES:].decode(errors="replace")
        return msg[-4096:]

    def _final_delete(self, pod: Obj) -> None:
        md = pod["metadata"]
        self.kube.delete(
            pod_path(md["namespace"], md["name"]),
            {"gracePeriodSeconds": 0, "preconditions": {"uid": md["uid"]}},
        )

    def _report_running(self, run: PodRun, pod: Obj) -> None:
        c = pod["spec"]["containers"][0]
        status = {
            "phase": "Running",
            "podIP": run.ip,
            "podIPs": [{"ip": run.ip}],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": pod.get("status", {}).get("startTime") or run.started_at,
            "conditions": [
                _cond("PodReadyToStartContainers", "True"),
                _cond("Initialized", "True"),
                _cond("ContainersReady", "True"),
                _cond("Ready", "True"),
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": run.restarts,
                    "containerID": f"arcx-agent://{run.uid}",
                    "state": {"running": {"startedAt": run.started_at}},
                }
            ],
        }
        self._patch_status(pod, status)

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

    # -- process spec --------------------------------------------------------------------------

    def _process_spec(self, run: PodRun, pod: Obj) -> tuple[list[str], dict[str, str], str]:
        c = pod["spec"]["containers"][0]
        env: dict[str, str] = {
            "PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "HOSTNAME": run.hostnames[0] if run.hostnames else run.name,
        }
        for src in c.get("envFrom", []):
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                data = self._config_map(run.namespace, src["configMapRef"])
            elif "secretRef" in src:
                data = self._secret(run.namespace, src["secretRef"])
            else:
                continue
            env.update({prefix + k: v for k, v in data.items()})
        for e in c.get("env", []):
            env[e["name"]] = self._env_value(run, pod, c, e, env)
        if "JAX_COORDINATOR_ADDRESS" in env and "JAX_COORDINATOR_BIND_ADDRESS" not in env:
            port = env["JAX_COORDINATOR_ADDRESS"].rsplit(":", 1)[-1]
            env["JAX_COORDINATOR_BIND_ADDRESS"] = f"{run.ip}:{port}"
        command = [expand(x, env) for x in c.get("command", [])] or list(self.default_entrypoint)
        args = [expand(x, env) for x in c.get("args", [])]
        cwd = c.get("workingDir") or str(run.dir)
        if not Path(cwd).is_dir():
            cwd = str(run.dir)
        return command + args, env, cwd

    def _env_value(self, run: PodRun, pod: Obj, c: Obj, e: Obj, env: dict[str, str]) -> str:
        if "value" in e:
            return expand(str(e["value"]), env)
        vf = e.get("valueFrom", {})
        if "fieldRef" in vf:
            pod = {
                **pod,
                "status": {**pod.get("status", {}), "podIP": run.ip, "hostIP": "127.0.0.1"},
            }
            pod["status"]["podIPs"] = [{"ip": run.ip}]
            return field_ref(pod, vf["fieldRef"]["fieldPath"])
        if "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            return self._config_map(run.namespace, ref).get(ref["key"], "")
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            return self._secret(run.namespace, ref).get(ref["key"], "")
        if "resourceFieldRef" in vf:
            res = vf["resourceFieldRef"]["resource"]
            kind, _, name = res.partition(".")
            value = c.get("resources", {}).get(kind, {}).get(name)
            return str(
                value
                if value is not None
                else self.nodes[run.node]["status"]["capacity"].get(name, "0")
            )
        return ""

    def _config_map(self, ns: str, ref: Obj) -> dict[str, str]:
        cm = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/{ref['name']}")
        if cm is None:
            if ref.get("optional"):
                return {}
            raise _NotReady(f"configmap {ns}/{ref['name']} not found")
        return dict(cm.get("data") or {})

    def _secret(self, ns: str, ref: Obj) -> dict[str, str]:
        import base64

        s = self.kube.get_or_none(
            f"/api/v1/namespaces/{ns}/secrets/{ref.get('name', ref.get('secretName'))}"
        )
        if s is None:
            if ref.get("optional"):
                return {}
            raise _NotReady(f"secret {ns}/{ref.get('name')} not found")
        return {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}

    # -- volumes, mounts, hosts ---------------------------------------------------------------

    def _materialise_volumes(self, pod: Obj, pod_dir: Path) -> dict[str, Path]:
        ns = pod["metadata"]["namespace"]
        out: dict[str, Path] = {}
        vroot = pod_dir / "volumes"
        for v in pod["spec"].get("volumes", []):
            name = v["name"]
            if "configMap" in v or "secret" in v:
                if "configMap" in v:
                    src = v["configMap"]
                    data = self._config_map(ns, src)
                else:
                    src = v["secret"]
                    data = self._secret(ns, {**src, "name": src["secretName"]})
                d = vroot / name
                d.mkdir(parents=True, exist_ok=True)
                items = src.get("items") or [{"key": k, "path": k} for k in data]
                for it in items:
                    if it["key"] in data:
                        p = d / it["path"]
                        p.parent.mkdir(parents=True, exist_ok=True)
                        p.write_text(data[it["key"]])
                out[name] = d
            elif "emptyDir" in v:
                d = vroot / name
                d.mkdir(parents=True, exist_ok=True)
                out[name] = d
            elif "hostPath" in v:
                p = Path(v["hostPath"]["path"])
                if v["hostPath"].get("type", "") in ("", "DirectoryOrCreate"):
                    p.mkdir(parents=True, exist_ok=True)
                out[name] = p
            elif "persistentVolumeClaim" in v and (
                claim := self._claim_path(ns, v["persistentVolumeClaim"]["claimName"])
            ):
                out[name] = claim
            else:
                log.info(
                    "volume %s of %s is not emulated; not mounted", name, pod["metadata"]["name"]
                )
        pod_dir.mkdir(parents=True, exist_ok=True)
        return out

    def _claim_path(self, ns: str, claim: str) -> Path | None:
        """The directory behind a bound claim whose PersistentVolume is a hostPath or local
        volume (static provisioning: the local control plane has no provisioner)."""
        pvc = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
        if pvc is None:
            raise _NotReady(f"persistentvolumeclaim {ns}/{claim} not found")
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if not pv_name or (pvc.get("status") or {}).get("phase") != "Bound":
            raise _NotReady(f"persistentvolumeclaim {ns}/{claim} is not bound")
        pv = self.kube.get_or_none(f"/api/v1/persistentvolumes/{pv_name}")
        source = (pv or {}).get("spec") or {}
        path = (source.get("hostPath") or source.get("local") or {}).get("path")
        if not path:
            log.info("persistentvolume %s is not hostPath or local; not mounted", pv_name)
            return None
        return Path(path)

    def _mount_script(self, run: PodRun, pod: Obj, c: Obj) -> str:
        q = shlex.quote
        lines = [
            f"echo {q(run.hostnames[0] if run.hostnames else run.name)} > /proc/sys/kernel/hostname"
        ]
        volumes = run.volumes
        for m in c.get("volumeMounts", []):
            src = volumes.get(m["name"])
            if src is None:
                continue
            if m.get("subPath"):
                src = src / m["subPath"]
            target = Path(m["mountPath"])
            if src.is_dir():
                if not target.exists():
                    target.mkdir(parents=True)
                    run.created_dirs.append(target)
            else:
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
                    run.created_dirs.append(target)
            lines.append(f"mount --bind {q(str(src))} {q(str(target))}")
            if m.get("readOnly"):
                lines.append(f"mount -o remount,bind,ro {q(str(target))}")
        tpath = Path(c.get("terminationMessagePath") or "/dev/termination-log")
        if not tpath.exists():
            tpath.parent.mkdir(parents=True, exist_ok=True)
            tpath.touch()
            run.created_dirs.append(tpath)
        lines.append(f"mount --bind {q(str(run.dir / 'termination-log'))} {q(str(tpath))}")
        if run.hosts_file:
            lines.append(f"mount --bind {q(str(run.hosts_file))} /etc/hosts")
        return "set -e\n" + "\n".join(lines) + "\n"

    def _register_hostnames(self, run: PodRun, pod: Obj) -> None:
        spec = pod["spec"]
        host = spec.get("hostname") or run.name
        names = [host]
        sub = spec.get("subdomain")
        if sub:
            fq = f"{host}.{sub}.{run.namespace}.svc"
            names = [
                host,
                f"{fq}.cluster.local",
                fq,
                f"{host}.{sub}.{run.namespace}",
                f"{host}.{sub}",
            ]
        run.hostnames = names
        run.hosts_file = run.dir / "hosts"
        run.dir.mkdir(parents=True, exist_ok=True)
        run.hosts_file.write_text("")
        self._write_hosts()

    def _write_hosts(self) -> None:
        """Rewrite every running pod's /etc/hosts in place (it is bind-mounted by inode)."""
        runs = [r for r in self.runs.values() if r.hosts_file and r.hostnames]
        for r in runs:
            lines = [self.base_hosts, f"{r.ip}\t{' '.join(r.hostnames)}\n"]
            for other in runs:
                if other is r or len(other.hostnames) < 2:
                    continue
                # Names under the pod's own namespace resolve short (the search path).
                names = (
                    other.hostnames[1:] if other.namespace == r.namespace else other.hostnames[1:3]
                )
                lines.append(f"{other.ip}\t{' '.join(names)}\n")
            with open(r.hosts_file, "r+") as fh:
                fh.seek(0)
                fh.write("".join(lines))
                fh.truncate()

    def _cleanup(self, run: PodRun) -> None:
        for p in reversed(run.created_dirs):
            others = any(p in r.created_dirs for r in self.runs.values() if r is not run)
            if others:
                continue
            try:
                if p.is_dir():
                    p.rmdir()
                elif p.stat().st_size == 0:
                    p.unlink()
            except OSError:
                pass
        run.created_dirs.clear()


class _NotReady(Exception):
    """Something the pod needs (a ConfigMap, a Secret) does not exist yet."""


def _cond(kind: str, status: str, reason: str = "") -> Obj:
    c: Obj = {"type": kind, "status": status, "lastTransitionTime": now(), "lastProbeTime": None}
    if reason:
        c["reason"] = reason
    return c


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _terminate(popen: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL to the process group after the grace period, as the kubelet does."""
    try:
        popen.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        popen.wait(timeout=max(grace, 0.0))
    except subprocess.TimeoutExpired:
        _killpg(popen.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--nodes", required=True, help="JSON file: list of node specs")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--default-entrypoint", default="arcx")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = NodeAgent(
        Kube(args.kubeconfig, user_agent="arcx-node-agent"),
        json.loads(Path(args.nodes).read_text()),
        Path(args.workdir),
        shlex.split(args.default_entrypoint),
    )
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stopping.set())
    agent.run(Path(args.ready_file) if args.ready_file else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
