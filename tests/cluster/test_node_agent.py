"""The local control plane and its test node agent behave as a kubelet would, seen through
the API: pods run with their environment, report exit codes and termination messages, find
each other by hostname, and are killed with SIGTERM when evicted (preempted).

The node agent is a stand-in for the kubelet and container runtime (none can run here);
everything else in these tests is the real control plane."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hack.cluster.cluster import Cluster
from hack.cluster.kubeapi import Obj, pod_path
from hack.cluster.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _pod(name: str, script: str, **spec: Any) -> Obj:
    container = {
        "name": "main",
        "image": "ignored",
        "command": [sys.executable, "-c", textwrap.dedent(script)],
        **spec.pop("container", {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def _terminated(cluster: Cluster, ns: str, name: str) -> Obj:
    def done() -> Obj | None:
        pod = cluster.kube.get(pod_path(ns, name))
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return pod
        return None

    return wait_for(f"pod {ns}/{name} to terminate", done, timeout=60)


def test_nodes_registered(local_cluster: Cluster) -> None:
    nodes = local_cluster.kube.get("/api/v1/nodes")["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert {"cpu-0", "cpu-1"} <= set(by_name)
    tpu = by_name["gke-v5e-4x4-spot-0"]
    assert (
        tpu["metadata"]["labels"]["cloud.google.com/gke-tpu-accelerator"] == "tpu-v5-lite-podslice"
    )
    assert tpu["metadata"]["labels"]["cloud.google.com/gke-spot"] == "true"
    assert tpu["status"]["allocatable"]["google.com/tpu"] == "4"
    assert tpu["spec"]["taints"][0]["key"] == "google.com/tpu"
    ready = [c for c in by_name["cpu-0"]["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"


def test_pod_runs_with_env_volumes_and_reports_failure(
    local_cluster: Cluster, namespace: str
) -> None:
    kube = local_cluster.kube
    kube.create(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "cfg"}, "data": {"job.yaml": "hello: world\n"}},
    )
    script = """
        import os, socket, sys
        print("index", os.environ["IDX"], "slice", os.environ["SLICE"], "pod", os.environ["POD"])
        print("ip", os.environ["POD_IP"], "expanded", os.environ["EXPANDED"])
        print("config", open("/etc/arcx/job.yaml").read().strip())
        print("hostname", socket.gethostname())
        sys.exit(3)
    """
    env = [
        {
            "name": "IDX",
            "valueFrom": {
                "fieldRef": {
                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                }
            },
        },
        {"name": "SLICE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['slice']"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "EXPANDED", "value": "$(POD)-x"},
    ]
    pod = _pod(
        "runner",
        script,
        metadata={
            "labels": {"slice": "7"},
            "annotations": {"batch.kubernetes.io/job-completion-index": "2"},
        },
        hostname="host-a",
        container={
            "env": env,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/arcx", "readOnly": True}],
        },
        volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}],
    )
    kube.create(pod_path(namespace), pod)
    done = _terminated(local_cluster, namespace, "runner")
    assert done["status"]["phase"] == "Failed"
    assert done["spec"]["nodeName"].startswith("cpu-")
    term = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3
    assert term["reason"] == "Error"
    msg = term["message"]
    ip = done["status"]["podIP"]
    assert ip.startswith("127.") and ip != "127.0.0.1"
    assert "index 2 slice 7 pod runner" in msg
    assert f"ip {ip} expanded runner-x" in msg
    assert "config hello: world" in msg
    assert "hostname host-a" in msg


def test_pod_hostnames_resolve_for_other_pods(local_cluster: Cluster, namespace: str) -> None:
    server = """
        import os, socket
        s = socket.socket(); s.bind((os.environ["POD_IP"], 7000)); s.listen()
        c, _ = s.accept(); c.sendall(b"hello from " + socket.gethostname().encode()); c.close()
    """
    client = """
        import socket, time
        for _ in range(200):
            try:
                c = socket.create_connection(("srv-0.grp", 7000), timeout=2); break
            except OSError:
                time.sleep(0.1)
        print(c.recv(100).decode())
    """
    ip_env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    kube = local_cluster.kube
    kube.create(
        pod_path(namespace),
        _pod(
            "srv",
            server,
            hostname="srv-0",
            subdomain="grp",
            container={"env": ip_env, "terminationMessagePolicy": "FallbackToLogsOnError"},
        ),
    )
    kube.create(
        pod_path(namespace),
        _pod(
            "cli",
            client,
            subdomain="grp",
            container={"terminationMessagePolicy": "FallbackToLogsOnError"},
        ),
    )
    srv = _terminated(local_cluster, namespace, "srv")
    cli = _terminated(local_cluster, namespace, "cli")
    assert srv["status"]["phase"] == "Succeeded", srv["status"]
    assert cli["status"]["phase"] == "Succeeded", cli["status"]
    term = cli["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0
    assert srv["status"]["podIP"] != cli["status"]["podIP"]


def test_eviction_sets_disruption_target_and_sends_sigterm(
    local_cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    armed = tmp_path / "armed"
    script = f"""
        import pathlib, signal, sys, time
        def stop(*_):
            print("got SIGTERM", flush=True); sys.exit(75)
        signal.signal(signal.SIGTERM, stop)
        pathlib.Path({str(armed)!r}).write_text("ready")
        while True:
            time.sleep(0.1)
    """
    kube = local_cluster.kube
    pod = _pod(
        "victim",
        script,
        metadata={"finalizers": ["arcx.dev/test-hold"]},
        container={"terminationMessagePolicy": "FallbackToLogsOnError"},
    )
    kube.create(pod_path(namespace), pod)
    wait_for("the pod's SIGTERM handler", armed.exists)
    kube.create(
        pod_path(namespace, "victim", "eviction"),
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "victim", "namespace": namespace},
        },
    )
    done = _terminated(local_cluster, namespace, "victim")
    conds = {c["type"]: c for c in done["status"]["conditions"]}
    assert conds["DisruptionTarget"]["status"] == "True"
    term = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 75
    assert "got SIGTERM" in term["message"]
    kube.patch(
        pod_path(namespace, "victim"),
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )


def test_host_path_empty_dir_and_claim_volumes_are_mounted(
    local_cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """hostPath, emptyDir and a PersistentVolumeClaim bound (by kube-controller-manager) to
    a hostPath PersistentVolume are bind-mounted at mountPaths that differ from their host
    directories: what the pod writes lands in the volume, and only the pod sees the mount."""
    kube = local_cluster.kube
    host_dir, claim_dir = tmp_path / "host", tmp_path / "claim"
    claim_dir.mkdir()
    inside = {k: tmp_path / f"inside-{k}" for k in ("host", "scratch", "claim")}
    pv_name = f"pv-{namespace}"
    kube.create(
        "/api/v1/persistentvolumes",
        {
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(claim_dir), "type": "Directory"},
            },
        },
    )
    try:
        kube.create(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "volumeName": pv_name,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        dirs = {k: str(v) for k, v in inside.items()}
        script = f"""
            import pathlib
            for k, d in {dirs!r}.items():
                pathlib.Path(d, "hello").write_text("from the pod via " + k)
            print("scratch", pathlib.Path({dirs["scratch"]!r}, "hello").read_text())
            raise SystemExit(3)  # a failure, so FallbackToLogsOnError reports the output
        """
        pod = _pod(
            "mounter",
            script,
            container={
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": k, "mountPath": str(p)} for k, p in inside.items()],
            },
            volumes=[
                {"name": "host", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
            ],
        )
        kube.create(pod_path(namespace), pod)
        done = _terminated(local_cluster, namespace, "mounter")
        term = done["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 3, term
        assert "scratch from the pod via scratch" in term["message"], term
        assert (host_dir / "hello").read_text() == "from the pod via host"
        assert (claim_dir / "hello").read_text() == "from the pod via claim"
        for p in inside.values():  # the mounts lived in the pod's mount namespace only
            assert not (p / "hello").exists(), p
        claim = kube.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/data")
        assert claim["status"]["phase"] == "Bound"
    finally:
        kube.delete(pod_path(namespace, "mounter"))
        kube.delete(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/data")
        kube.delete(f"/api/v1/persistentvolumes/{pv_name}")


def test_mount_point_shared_by_pods_outlives_the_pod_that_created_it(
    local_cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """Two pods mount an emptyDir at the same host path that does not exist (as every arcx
    pod mounts its HOME at /home/arcx): when the first pod is gone the second keeps its mount,
    and the path is removed only when the last pod using it is gone. The second pod knows the
    agent has handled the first one's deletion when that pod's name leaves its /etc/hosts."""
    kube = local_cluster.kube
    home, seen = tmp_path / "home", tmp_path / "seen"
    mount = {"volumeMounts": [{"name": "home", "mountPath": str(home)}]}
    volumes = [{"name": "home", "emptyDir": {}}]
    first = "import time\ntime.sleep(600)"
    second = f"""
        import os, pathlib, sys, time
        def has_first():
            return "first-0.grp" in open("/etc/hosts").read()
        for _ in range(600):
            if has_first():
                break
            time.sleep(0.1)
        pathlib.Path({str(seen)!r}).write_text("seen")
        for _ in range(600):
            if not has_first():
                break
            time.sleep(0.1)
        else:
            sys.exit(5)
        # A bind mount from the same filesystem: os.path.ismount cannot tell, mountinfo can.
        mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
        print("mounted", {str(home)!r} in mounts, "exists", os.path.isdir({str(home)!r}))
        sys.exit(0 if {str(home)!r} in mounts else 4)
    """
    kube.create(
        pod_path(namespace),
        _pod("first", first, hostname="first-0", subdomain="grp", container=mount, volumes=volumes),
    )
    kube.create(
        pod_path(namespace),
        _pod(
            "second",
            second,
            container={**mount, "terminationMessagePolicy": "FallbackToLogsOnError"},
            volumes=volumes,
        ),
    )
    wait_for("the second pod to see the first", seen.exists)
    kube.delete(pod_path(namespace, "first"), {"gracePeriodSeconds": 1})
    done = _terminated(local_cluster, namespace, "second")
    term = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0, term
    assert home.is_dir()
    kube.delete(pod_path(namespace, "second"))
    wait_for("the last pod's mount point to be removed", lambda: not home.exists())
