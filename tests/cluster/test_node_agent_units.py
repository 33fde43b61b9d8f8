"""Pure parts of the test node agent: downward-API fields, $(VAR) expansion, env resolution,
the pod status builders, /etc/hosts, shared mount points, node shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hack.cluster.kubeapi import Obj
from hack.cluster.nodeagent import podstatus
from hack.cluster.nodeagent.hosts import hosts_text, pod_hostnames
from hack.cluster.nodeagent.podenv import PodContext, expand, field_ref, process_spec
from hack.cluster.nodeagent.podrun import PodRun
from hack.cluster.nodeagent.sources import NotReady
from hack.cluster.nodeagent.volumes import MountPoints
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


class _Sources:
    """ConfigMaps and Secrets from dicts, as the API would return them (decoded)."""

    def __init__(self, config_maps: dict[str, dict[str, str]], secrets: dict[str, dict[str, str]]):
        self.config_maps, self.secrets = config_maps, secrets

    def config_map(self, namespace: str, ref: Obj) -> dict[str, str]:
        return self._get(self.config_maps, namespace, ref)

    def secret(self, namespace: str, ref: Obj) -> dict[str, str]:
        return self._get(self.secrets, namespace, ref)

    def claim_path(self, namespace: str, claim: str) -> Path | None:
        return None

    @staticmethod
    def _get(store: dict[str, dict[str, str]], namespace: str, ref: Obj) -> dict[str, str]:
        if ref["name"] in store:
            return store[ref["name"]]
        if ref.get("optional"):
            return {}
        raise NotReady(f"{namespace}/{ref['name']} not found")


def _ctx(tmp_path: Path) -> PodContext:
    return PodContext(
        ip="127.9.0.2",
        hostname="host-a",
        dir=tmp_path,
        node_capacity={"cpu": "8", "memory": "16Gi"},
        bin_dir="/venv/bin",
        default_entrypoint=("arcx",),
    )


def _pod_with(container: Obj) -> Obj:
    return {**POD, "spec": {**POD["spec"], "containers": [{"name": "main", **container}]}}


def test_process_spec_resolves_env_in_order(tmp_path: Path) -> None:
    sources = _Sources({"cfg": {"A": "from-cm", "B": "b"}}, {"sec": {"token": "t0k"}})
    pod = _pod_with(
        {
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
            "env": [
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "URL", "value": "http://$(IP):1/$(CM_A)"},
                {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}},
                {"name": "TOK", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "JAX_COORDINATOR_ADDRESS", "value": "coord.grp:8476"},
            ],
            "command": ["run", "$(URL)"],
            "args": ["$$(IP)", "$(KEY)"],
            "workingDir": "/does/not/exist",
        }
    )
    spec = process_spec(pod, _ctx(tmp_path), sources)
    # The agent's own address wins over whatever the pod object says.
    assert spec.env["IP"] == "127.9.0.2"
    assert spec.env["URL"] == "http://127.9.0.2:1/from-cm"
    assert spec.env["CM_B"] == "b" and spec.env["KEY"] == "b" and spec.env["TOK"] == "t0k"
    assert spec.env["CPU"] == "8"  # no limit: the node's capacity
    assert spec.env["JAX_COORDINATOR_BIND_ADDRESS"] == "127.9.0.2:8476"
    assert spec.env["HOSTNAME"] == "host-a" and spec.env["PATH"].startswith("/venv/bin:")
    assert spec.argv == ["run", "http://127.9.0.2:1/from-cm", "$(IP)", "b"]
    assert spec.cwd == str(tmp_path)  # a missing workingDir falls back to the pod directory


def test_process_spec_default_entrypoint_and_missing_sources(tmp_path: Path) -> None:
    sources = _Sources({}, {})
    spec = process_spec(_pod_with({"args": ["worker"]}), _ctx(tmp_path), sources)
    assert spec.argv == ["arcx", "worker"]
    optional = {"envFrom": [{"secretRef": {"name": "absent", "optional": True}}]}
    assert process_spec(_pod_with(optional), _ctx(tmp_path), sources).argv == ["arcx"]
    required = {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent"}}}]}
    with pytest.raises(NotReady, match="absent"):
        process_spec(_pod_with(required), _ctx(tmp_path), sources)


def _run(tmp_path: Path, **kw: object) -> PodRun:
    run = PodRun("uid-1", "ns", "p", "127.9.0.2", "cpu-0", tmp_path, started_at="T0")
    run.restarts = 2
    for k, v in kw.items():
        setattr(run, k, v)
    return run


def test_container_status_builder_covers_the_three_states(tmp_path: Path) -> None:
    pod = _pod_with({"image": "img:1"})
    running = podstatus.running_status(_run(tmp_path), pod)
    (rc,) = running["containerStatuses"]
    assert running["phase"] == "Running" and running["podIP"] == "127.9.0.2"
    assert rc["ready"] and rc["started"] and rc["restartCount"] == 2
    assert rc["containerID"] == "arcx-agent://uid-1" and rc["image"] == "img:1"
    assert rc["state"] == {"running": {"startedAt": "T0"}}
    assert {c["type"] for c in running["conditions"] if c["status"] == "True"} >= {"Ready"}

    done = podstatus.finished_status(_run(tmp_path), pod, 3, "boom")
    (dc,) = done["containerStatuses"]
    term = dc["state"]["terminated"]
    assert done["phase"] == "Failed" and not dc["ready"] and not dc["started"]
    assert (term["exitCode"], term["reason"], term["message"]) == (3, "Error", "boom")
    ok = podstatus.finished_status(_run(tmp_path), pod, 0, "")
    assert ok["phase"] == "Succeeded"
    assert ok["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert "message" not in ok["containerStatuses"][0]["state"]["terminated"]
    tpu = podstatus.finished_status(_run(tmp_path, tpu=True), pod, 0, "")
    assert tpu["phase"] == "Failed"  # a fake TPU pod never ran

    failed = podstatus.start_error_status(_run(tmp_path), pod, "unsupported fieldRef")
    (fc,) = failed["containerStatuses"]
    assert failed["phase"] == "Failed" and "containerID" not in fc
    assert fc["state"]["terminated"]["reason"] == "StartError"
    assert fc["state"]["terminated"]["exitCode"] == podstatus.START_ERROR_EXIT_CODE


def test_termination_message_falls_back_to_the_log_tail(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"".join(b"line %d\n" % i for i in range(200)))
    fallback = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    msg = podstatus.termination_message(tmp_path, fallback, 1)
    assert msg.endswith("line 199") and "line 119" not in msg
    assert len(msg.encode()) <= podstatus.TERMINATION_LOG_BYTES
    assert podstatus.termination_message(tmp_path, fallback, 0) == ""
    assert podstatus.termination_message(tmp_path, {}, 1) == ""
    (tmp_path / "termination-log").write_text("written by the container")
    assert podstatus.termination_message(tmp_path, fallback, 1) == "written by the container"


def test_hosts_files_name_other_pods_by_service(tmp_path: Path) -> None:
    def pod(name: str, ns: str, sub: str | None) -> Obj:
        spec = {"hostname": name, **({"subdomain": sub} if sub else {})}
        return {"metadata": {"name": name, "namespace": ns}, "spec": spec}

    a = _run(tmp_path, name="a", ip="127.9.0.2", hostnames=pod_hostnames(pod("a", "ns", "g")))
    b = _run(tmp_path, name="b", ip="127.9.0.3", hostnames=pod_hostnames(pod("b", "ns", None)))
    c = _run(tmp_path, name="c", namespace="other", ip="127.9.0.4")
    c.hostnames = pod_hostnames(pod("c", "other", "g"))
    assert a.hostnames == ["a", "a.g.ns.svc.cluster.local", "a.g.ns.svc", "a.g.ns", "a.g"]
    text = hosts_text(b, [a, b, c])
    assert "127.9.0.2\ta.g.ns.svc.cluster.local a.g.ns.svc a.g.ns a.g\n" in text
    assert "127.9.0.4\tc.g.other.svc.cluster.local c.g.other.svc\n" in text  # no short names
    assert "127.9.0.3\tb\n" in text
    assert "127.9.0.3" not in hosts_text(a, [a, b, c])  # b has no Service names


def test_mount_point_is_removed_only_by_its_last_user(tmp_path: Path) -> None:
    home, log = tmp_path / "home" / "arcx", tmp_path / "dev" / "termination-log"
    existing = tmp_path / "existing"
    existing.mkdir()
    points = MountPoints()
    for uid in ("a", "b"):
        points.acquire(uid, home, directory=True)
        points.acquire(uid, log, directory=False)
        points.acquire(uid, existing, directory=True)
    points.acquire("a", home, directory=True)  # a restart mounts again
    points.release("a")
    assert home.is_dir() and log.is_file()
    points.release("b")
    assert not home.exists() and not log.exists()
    assert existing.is_dir()  # not the agent's to remove
