"""`arcx-operator` as a process against a real API server and the real JobSet controller.

The jobs here never start pods (suspended, queued, or rejected), so the tests pin the
operator's own behaviour: what it creates and owns, suspend, Kueue queueing, status and
Events, a spec it cannot render, and leader election between two replicas. Running jobs end
to end is tests/cluster/test_e2e.py. The operator uses the admin kubeconfig here; the chart's
RBAC is exercised by the e2e tests.
"""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from op_helpers import CRD_PATH, load_sample

from arcx.config import parse_config
from hack.cluster.arcx_system import OperatorProcess
from hack.cluster.kubeapi import MERGE
from hack.cluster.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

AEJ = "/apis/arcx.dev/v1alpha1/namespaces/{ns}/arcextractionjobs"
JOBSET = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/{ns}/jobsets/{name}"


@pytest.fixture(scope="module")
def ns(cluster: Any) -> Iterator[str]:
    if not cluster.local:
        pytest.skip(
            "on an external cluster the chart's own operator would act on these resources too"
        )
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_PATH.stem}")
    name = f"op-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _operator(cluster: Any, ns: str, log: Path, *extra: str) -> OperatorProcess:
    op = OperatorProcess(
        Path(cluster.kubeconfig),
        ns,
        log,
        extra_args=[f"--namespace={ns}", "--sync-interval=1", *extra],
    )
    op.start()
    return op


@pytest.fixture(scope="module")
def operator(
    cluster: Any, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = _operator(
        cluster, ns, tmp_path_factory.mktemp("op") / "operator.log", "--no-leader-election"
    )
    yield op
    op.stop()


def _create(cluster: Any, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    return cluster.kube.create(AEJ.format(ns=ns), body)


def _get(cluster: Any, ns: str, name: str) -> dict[str, Any]:
    return cluster.kube.get(f"{AEJ.format(ns=ns)}/{name}")


def _wait_phase(
    cluster: Any, op: OperatorProcess, ns: str, name: str, phase: str, timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        assert op.alive(), op.tail()
        obj = _get(cluster, ns, name)
        return obj if (obj.get("status") or {}).get("phase") == phase else None

    try:
        return wait_for(f"{ns}/{name} to be {phase}", reached, timeout=timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}\noperator log:\n{op.tail()}") from None


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj["status"]["conditions"]}


def test_suspended_job_gets_owned_config_map_and_jobset(
    cluster: Any, ns: str, operator: OperatorProcess
) -> None:
    body = load_sample("cpu-2x2.yaml")
    body["metadata"] = {"name": "held"}
    body["spec"]["suspend"] = True
    made = _create(cluster, ns, body)
    obj = _wait_phase(cluster, operator, ns, "held", "Suspended")
    uid = made["metadata"]["uid"]

    cm = cluster.kube.get(f"/api/v1/namespaces/{ns}/configmaps/held-config")
    assert cm["metadata"]["ownerReferences"][0]["uid"] == uid
    cfg = parse_config(yaml.safe_load(cm["data"]["job.yaml"]), "the ConfigMap")
    assert cfg.parallelism.slices == 2 and cfg.output.uri == body["spec"]["output"]["uri"]
    js = cluster.kube.get(JOBSET.format(ns=ns, name="held"))
    assert js["metadata"]["ownerReferences"][0]["uid"] == uid
    assert js["spec"]["suspend"] is True
    assert js["spec"]["replicatedJobs"][0]["replicas"] == 2

    status = obj["status"]
    assert (
        status["jobSetName"] == "held"
        and status["observedGeneration"] == made["metadata"]["generation"]
    )
    conds = _conditions(obj)
    assert conds["Suspended"]["status"] == "True" and conds["Created"]["status"] == "True"
    assert all(c["lastTransitionTime"] for c in conds.values())
    assert conds["OutputMounted"]["status"] == "True", conds["OutputMounted"]
    pod = js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["job-config", "arcx-home", "arcx-tmp", "data"]
    assert pod["securityContext"]["runAsNonRoot"] is True

    events = cluster.kube.get(
        f"/api/v1/namespaces/{ns}/events", fieldSelector="involvedObject.name=held"
    )
    assert any(e["reason"] == "Suspended" for e in events["items"]), events["items"]

    # Resuming flips the JobSet; delete at once so no pod needs to run here.
    cluster.kube.patch(
        f"{AEJ.format(ns=ns)}/held", {"spec": {"suspend": False}}, content_type=MERGE
    )
    wait_for(
        "the JobSet to resume",
        lambda: cluster.kube.get(JOBSET.format(ns=ns, name="held"))["spec"]["suspend"] is False,
        timeout=30,
    )
    cluster.kube.delete(f"{AEJ.format(ns=ns)}/held")


def test_queued_job_waits_for_kueue(cluster: Any, ns: str, operator: OperatorProcess) -> None:
    body = load_sample("kueue-queued.yaml")
    _create(cluster, ns, body)
    obj = _wait_phase(cluster, operator, ns, "queued", "Pending")
    wait_for(
        "the Queued reason",
        lambda: _conditions(_get(cluster, ns, "queued"))["Created"]["status"] == "True",
    )
    js = cluster.kube.get(JOBSET.format(ns=ns, name="queued"))
    assert js["spec"]["suspend"] is True
    assert js["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tpu-v6e"
    assert obj["status"]["phase"] == "Pending"
    cluster.kube.delete(f"{AEJ.format(ns=ns)}/queued")


def test_unrenderable_spec_fails_with_the_field(
    cluster: Any, ns: str, operator: OperatorProcess
) -> None:
    body = load_sample("cpu-2x2.yaml")
    body["metadata"] = {"name": "no-image"}
    del body["spec"]["image"]  # the schema allows it; this operator has no --default-job-image
    _create(cluster, ns, body)
    obj = _wait_phase(cluster, operator, ns, "no-image", "Failed")
    failed = _conditions(obj)["Failed"]
    assert failed["reason"] == "InvalidSpec" and "spec.image" in failed["message"]
    assert cluster.kube.get_or_none(JOBSET.format(ns=ns, name="no-image")) is None
    assert obj["status"].get("completionTime")


def test_unmounted_output_path_is_a_warning_not_an_error(
    cluster: Any, ns: str, operator: OperatorProcess
) -> None:
    body = load_sample("cpu-2x2.yaml")
    body["metadata"] = {"name": "unmounted"}
    body["spec"]["suspend"] = True
    del body["spec"]["volumes"], body["spec"]["volumeMounts"]
    _create(cluster, ns, body)
    obj = _wait_phase(cluster, operator, ns, "unmounted", "Suspended")
    cond = _conditions(obj)["OutputMounted"]
    assert cond["status"] == "False" and cond["reason"] == "OutputNotMounted", cond
    assert body["spec"]["output"]["uri"] in cond["message"]
    assert cluster.kube.get_or_none(JOBSET.format(ns=ns, name="unmounted")) is not None

    def warned() -> list[Any]:
        events = cluster.kube.get(
            f"/api/v1/namespaces/{ns}/events", fieldSelector="involvedObject.name=unmounted"
        )["items"]
        return [e for e in events if e["reason"] == "OutputNotMounted" and e["type"] == "Warning"]

    assert wait_for("the OutputNotMounted Warning event", warned, timeout=30)
    cluster.kube.delete(f"{AEJ.format(ns=ns)}/unmounted")


def _is_leader(op: OperatorProcess) -> bool | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(r"^arcx_operator_leader (\S+)$", text, re.M)
    return None if m is None else float(m.group(1)) == 1.0


def test_only_one_replica_leads_and_a_standby_takes_over(
    cluster: Any, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lease = f"arcx-test-{uuid.uuid4().hex[:6]}"
    logs = tmp_path_factory.mktemp("leader")
    args = (f"--lease-name={lease}", "--lease-duration=6")
    first = _operator(cluster, ns, logs / "a.log", *args, "--identity=replica-a")
    wait_for("the first replica to lead", lambda: _is_leader(first), timeout=60)
    second = _operator(cluster, ns, logs / "b.log", *args, "--identity=replica-b")
    try:
        wait_for(
            "the second replica to serve metrics",
            lambda: _is_leader(second) is not None,
            timeout=60,
        )
        assert _is_leader(second) is False and _is_leader(first) is True
        holder = cluster.kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{lease}")
        assert holder["spec"]["holderIdentity"] == "replica-a"
        first.kill()
        wait_for("the standby to take over", lambda: _is_leader(second), timeout=60)
        holder = cluster.kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{lease}")
        assert holder["spec"]["holderIdentity"] == "replica-b"
        assert holder["spec"]["leaseTransitions"] >= 1
    finally:
        first.kill()
        second.stop()


def test_a_foreign_config_map_is_not_adopted(
    cluster: Any, ns: str, operator: OperatorProcess
) -> None:
    cluster.kube.create(
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "clash-config"}, "data": {"job.yaml": "someone else's"}},
    )
    body = load_sample("cpu-2x2.yaml")
    body["metadata"] = {"name": "clash"}
    _create(cluster, ns, body)
    obj = _wait_phase(cluster, operator, ns, "clash", "Failed")
    failed = _conditions(obj)["Failed"]
    assert failed["reason"] == "InvalidSpec" and "ConfigMap named clash-config" in failed["message"]
    assert cluster.kube.get_or_none(JOBSET.format(ns=ns, name="clash")) is None
    cm = cluster.kube.get(f"/api/v1/namespaces/{ns}/configmaps/clash-config")
    assert cm["data"]["job.yaml"] == "someone else's"
