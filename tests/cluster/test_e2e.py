"""End-to-end scenarios of issue 6, against any kubeconfig (the local control plane by
default, ``ARCX_E2E_KUBECONFIG`` for kind). Everything is real: the API server, the
controller manager, the scheduler, the JobSet controller, helm, the chart's Deployment
running the operator image under the chart's RBAC, the kubelet with containerd running the
job-cpu image (`arcx run`) in every pod, cluster DNS for the JAX coordinator, in namespaces
that enforce Pod Security ``restricted``. The model, tasks and outputs are a host directory
the pods mount through a claim. Only the TPU nodes are fake Node objects (scenario 8).
With ``ARCX_E2E_NODE=agent`` the test node agent (hack/cluster/nodeagent/) runs the pods
as host processes instead, and the operator is a local process.

Scenario 5 (invalid resources rejected by the API server) is
tests/operator/test_crd_validation.py, on the same ``cluster`` fixture.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from arcx_store.layout import MARKER_NAME, UNITS_DIR

from hack.cluster import aej
from hack.cluster.arcx_system import ArcxSystem
from hack.cluster.cluster import Cluster
from hack.cluster.kubeapi import Obj, pod_path
from hack.cluster.volumes import CLAIM, make_namespace
from hack.cluster.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RUN_TIMEOUT = 420


def _describe(cluster: Cluster, arcx: ArcxSystem, ns: str, name: str) -> Callable[[], str]:
    """What to look at when a wait times out: the resource's status, its objects and pods,
    the namespace's recent events, the operator's log."""

    def describe() -> str:
        kube = cluster.kube
        obj = kube.get_or_none(aej.aej_path(ns, name))
        lines = [f"status: {json.dumps((obj or {}).get('status'))}"]
        lines.append(f"objects: {aej.owned_objects(kube, ns, name)}")
        for index, pods in aej.pods_by_slice(kube, ns, name).items():
            for p in pods:
                st = p.get("status", {})
                lines.append(
                    f"pod {p['metadata']['name']} slice {index} node {p['spec'].get('nodeName')} "
                    f"phase {st.get('phase')} {json.dumps(st.get('containerStatuses'))[:400]}"
                )
        events = kube.get(f"/api/v1/namespaces/{ns}/events")["items"][-12:]
        lines += [f"event {e.get('reason')}: {e.get('message')}" for e in events]
        if arcx.operator:
            lines.append("operator log:\n" + arcx.operator.tail(25))
        return "\n".join(lines)

    return describe


def _phase(
    cluster: Cluster,
    arcx: ArcxSystem,
    ns: str,
    name: str,
    *phases: str,
    timeout: float = RUN_TIMEOUT,
) -> Obj:
    def reached() -> Obj | None:
        obj = aej.get(cluster.kube, ns, name)
        return obj if (obj.get("status") or {}).get("phase") in phases else None

    return wait_for(
        f"{ns}/{name} to reach {'/'.join(phases)}",
        reached,
        timeout=timeout,
        interval=1,
        describe=_describe(cluster, arcx, ns, name),
    )


def _cpu_job(cluster: Cluster, name: str, **kw: object) -> Obj:
    """aej.cpu_job; on the real node (and kind) with the shared directory through its claim
    and the job image the node holds, never pulled."""
    body = aej.cpu_job(name, claim=CLAIM if cluster.runs_images else None, **kw)  # type: ignore[arg-type]
    if cluster.runs_images:
        body["spec"]["image"] = cluster.images["job-cpu"]
        body["spec"]["imagePullPolicy"] = "Never"
    return body


def _arcx(*args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "arcx")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def _store_digest(root: Path) -> dict[str, str]:
    """sha256 of every committed unit's files (parts, markers) and predictions."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and (rel.startswith("units/") or rel.startswith("predictions/")):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _jobset(cluster: Cluster, ns: str, name: str) -> Obj | None:
    return cluster.kube.get_or_none(aej.jobset_path(ns, name))


# -- scenario 7 -----------------------------------------------------------------------------


def test_deleting_the_resource_removes_everything(
    cluster: Cluster, arcx: ArcxSystem, namespace: str, tiny_model: Path, shared_dir: Path
) -> None:
    """Scenario 7: deleting the resource removes the JobSet, Jobs, pods and ConfigMap."""
    name = "doomed"
    aej.create(
        cluster.kube,
        namespace,
        _cpu_job(
            cluster, name, model_dir=tiny_model, output=shared_dir / "doomed", shared=shared_dir
        ),
    )

    def all_exist() -> dict[str, list[str]] | None:
        objs = aej.owned_objects(cluster.kube, namespace, name)
        return objs if all(objs.values()) else None

    before = wait_for(
        "the JobSet, Jobs, pods and ConfigMap",
        all_exist,
        timeout=150,
        describe=_describe(cluster, arcx, namespace, name),
    )
    assert len(before["jobs"]) == 2 and len(before["pods"]) == 4, before
    cluster.kube.delete(aej.aej_path(namespace, name))

    def all_gone() -> bool:
        objs = aej.owned_objects(cluster.kube, namespace, name)
        return (
            not any(objs.values())
            and cluster.kube.get_or_none(aej.aej_path(namespace, name)) is None
        )

    wait_for("every owned object to be deleted", all_gone, timeout=120)


# -- scenario 8 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "accelerator", "topology", "slices", "hosts", "spot"),
    [
        ("tpu-v5e-16", "tpu-v5-lite-podslice", "4x4", 1, 4, True),
        ("tpu-v4-multislice", "tpu-v4-podslice", "2x2x4", 4, 4, False),
    ],
)
def test_tpu_samples_land_on_matching_tpu_nodes(
    cluster: Cluster,
    arcx: ArcxSystem,
    namespace: str,
    sample: str,
    accelerator: str,
    topology: str,
    slices: int,
    hosts: int,
    spot: bool,
) -> None:
    """Scenario 8: pods land only on (fake) TPU nodes of the sample's accelerator and
    topology (spot ones for a spot sample), with one pod per host of every slice. Decoy
    pools (on-demand v5e 4x4, v4 2x2x2) exist so a wrong selector would be caught. The TPU
    nodes are Node objects no kubelet runs (hack/cluster/fakenodes.py beside the real node):
    there are no TPUs here, and placement is the scheduler's work, which is real."""
    if not cluster.local:
        pytest.skip("needs the fake TPU nodes of the local control plane")
    body = aej.sample(sample)
    name = body["metadata"]["name"]
    sa = body["spec"].get("serviceAccountName")
    if sa:  # the samples name the job's ServiceAccount (Workload Identity on GKE)
        cluster.kube.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": sa}}
        )
    aej.create(cluster.kube, namespace, body)

    def scheduled() -> dict[str, list[Obj]] | None:
        by_slice = aej.pods_by_slice(cluster.kube, namespace, name)
        pods = [p for ps in by_slice.values() for p in ps]
        if len(pods) == slices * hosts and all(p["spec"].get("nodeName") for p in pods):
            return by_slice
        return None

    by_slice = wait_for(
        f"{slices * hosts} pods of {name} to be scheduled",
        scheduled,
        timeout=150,
        describe=_describe(cluster, arcx, namespace, name),
    )
    assert sorted(by_slice) == [str(i) for i in range(slices)]
    nodes = {n["metadata"]["name"]: n for n in cluster.kube.get("/api/v1/nodes")["items"]}
    used: set[str] = set()
    for index, pods in by_slice.items():
        assert len(pods) == hosts, f"slice {index} has {len(pods)} pods, want {hosts}"
        for p in pods:
            node = nodes[p["spec"]["nodeName"]]
            labels = node["metadata"]["labels"]
            assert labels.get("cloud.google.com/gke-tpu-accelerator") == accelerator, p["spec"][
                "nodeName"
            ]
            assert labels.get("cloud.google.com/gke-tpu-topology") == topology, p["spec"][
                "nodeName"
            ]
            assert (labels.get("cloud.google.com/gke-spot") == "true") == spot, p["spec"][
                "nodeName"
            ]
            chips = p["spec"]["containers"][0]["resources"]["limits"]["google.com/tpu"]
            assert str(chips) == node["status"]["capacity"]["google.com/tpu"]
            used.add(p["spec"]["nodeName"])
    assert len(used) == slices * hosts, "two pods share a TPU host"
    cluster.kube.delete(aej.aej_path(namespace, name))
    wait_for(
        "the TPU pods to go",
        lambda: not aej.pods_by_slice(cluster.kube, namespace, name),
        timeout=90,
    )


# -- scenarios 1 and 2 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_run(
    cluster: Cluster, arcx: ArcxSystem, tiny_model: Path, shared_dir: Path
) -> tuple[str, Path, Obj]:
    """Scenario 1's run, shared with scenario 2 as the uninterrupted reference."""
    ns = "e2e-reference"
    if cluster.kube.get_or_none(f"/api/v1/namespaces/{ns}") is None:
        make_namespace(
            cluster.kube,
            ns,
            shared_dir if cluster.runs_images else None,
            restricted=not cluster.node_agent,
        )
    out = shared_dir / "reference"
    body = _cpu_job(cluster, "reference", model_dir=tiny_model, output=out, shared=shared_dir)
    aej.create(cluster.kube, ns, body)
    done = _phase(cluster, arcx, ns, "reference", "Succeeded", "Failed")
    return ns, out, done


def test_cpu_sample_succeeds(cluster: Cluster, reference_run: tuple[str, Path, Obj]) -> None:
    """Scenario 1: the CPU sample (2 slices x 2 hosts) on the tiny model and bundled tasks
    reaches Succeeded with every unit committed; `kubectl get aej` shows phase and
    progress; `arcx verify` on the output is clean. The model and output reach the pods
    through the resource's own hostPath volume (``spec.volumes``), which the operator
    reports as covering ``output.uri``."""
    ns, out, done = reference_run
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    mounted = aej.condition(done, "OutputMounted")
    assert mounted and mounted["status"] == "True" and mounted["reason"] == "Mounted", mounted
    jobset = _jobset(cluster, ns, "reference")
    assert jobset is not None
    pod = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    if cluster.runs_images:
        volume = {"name": "shared", "persistentVolumeClaim": {"claimName": CLAIM}}
    else:
        volume = {
            "name": "shared",
            "hostPath": {"path": str(out.parent), "type": "DirectoryOrCreate"},
        }
    assert volume in pod["volumes"]
    progress = status["progress"]
    assert progress["unitsTotal"] == 8  # 8 tasks, 1 per unit
    assert progress["unitsCommitted"] == progress["unitsTotal"]
    table = cluster.kubectl("get", "aej", "-n", ns).stdout
    header, row = table.splitlines()[:2]
    assert "PHASE" in header and "PROGRESS" in header, table
    assert "Succeeded" in row and "8/8" in row, table
    verify = _arcx("verify", str(out))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_preempted_pod_resumes_to_identical_output(
    cluster: Cluster,
    arcx: ArcxSystem,
    namespace: str,
    tiny_model: Path,
    shared_dir: Path,
    reference_run: tuple[str, Path, Obj],
) -> None:
    """Scenario 2: a pod preempted mid-run (Eviction API: DisruptionTarget, SIGTERM) makes
    the JobSet restart without using up maxRestarts; the run resumes from its commit
    markers (units committed before keep their marker untouched) and the output equals
    scenario 1's byte for byte."""
    _, ref_out, ref = reference_run
    assert ref["status"]["phase"] == "Succeeded"
    name = "preempted"
    out = shared_dir / "preempted"
    body = _cpu_job(
        cluster, name, model_dir=tiny_model, output=out, max_restarts=0, shared=shared_dir
    )
    aej.create(cluster.kube, namespace, body)
    marker = wait_for(
        "the first committed unit",
        lambda: next(iter(sorted(out.glob(f"{UNITS_DIR}/*/{MARKER_NAME}"))), None),
        timeout=RUN_TIMEOUT,
        interval=0.2,
        describe=_describe(cluster, arcx, namespace, name),
    )
    marker_mtime = marker.stat().st_mtime_ns
    running = [
        p
        for ps in aej.pods_by_slice(cluster.kube, namespace, name).values()
        for p in ps
        if p.get("status", {}).get("phase") == "Running"
    ]
    assert running, "every pod finished before one could be preempted"
    victim = running[0]
    cluster.kube.create(
        pod_path(namespace, victim["metadata"]["name"], "eviction"),
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": victim["metadata"]["name"], "namespace": namespace},
        },
    )
    done = _phase(cluster, arcx, namespace, name, "Succeeded", "Failed")
    jobset = _jobset(cluster, namespace, name)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert jobset is not None
    js_status = jobset.get("status", {})
    assert js_status.get("restarts", 0) >= 1, js_status
    assert js_status.get("restartsCountTowardsMax", 0) == 0, js_status
    assert marker.stat().st_mtime_ns == marker_mtime, "a committed unit was rewritten"
    assert _store_digest(out) == _store_digest(ref_out)


# -- scenarios 3 and 4 ------------------------------------------------------------------------


def test_crashing_job_fails_after_max_restarts(
    cluster: Cluster, arcx: ArcxSystem, namespace: str, tiny_model: Path, shared_dir: Path
) -> None:
    """Scenario 3: a job that crashes (its output path lies under a regular file, so every
    write fails: exit 1) restarts, each restart counts, and it ends Failed with the reason
    once maxRestarts is used up."""
    blocker = shared_dir / "crash-blocker"
    blocker.write_text("a file where a directory should be\n")
    name = "crasher"
    body = _cpu_job(
        cluster,
        name,
        model_dir=tiny_model,
        output=blocker / "out",
        slices=1,
        max_restarts=1,
        shared=shared_dir,
    )
    aej.create(cluster.kube, namespace, body)
    done = _phase(cluster, arcx, namespace, name, "Failed", "Succeeded")
    status = done["status"]
    assert status["phase"] == "Failed", status
    jobset = _jobset(cluster, namespace, name)
    assert jobset is not None
    assert jobset["status"].get("restarts") == 1, jobset["status"]
    assert jobset["status"].get("restartsCountTowardsMax") == 1, jobset["status"]
    failed = aej.condition(done, "Failed")
    assert failed and failed["status"] == "True", status
    assert failed.get("reason") and failed.get("message"), failed


def test_config_error_fails_at_once(
    cluster: Cluster, arcx: ArcxSystem, namespace: str, shared_dir: Path
) -> None:
    """Scenario 4: a model path that does not exist fails the job at once (exit 78), with
    no restart and the message in the resource's conditions."""
    name = "misconfigured"
    missing = shared_dir / "no-such-model"
    body = _cpu_job(
        cluster,
        name,
        model_dir=missing,
        output=shared_dir / "misconfigured",
        max_restarts=3,
        shared=shared_dir,
    )
    started = time.monotonic()
    aej.create(cluster.kube, namespace, body)
    done = _phase(cluster, arcx, namespace, name, "Failed", "Succeeded")
    assert done["status"]["phase"] == "Failed", done["status"]
    jobset = _jobset(cluster, namespace, name)
    assert jobset is not None
    assert jobset["status"].get("restarts", 0) == 0, jobset["status"]
    failed = aej.condition(done, "Failed")
    assert failed is not None
    assert "model.source" in failed.get("message", "") or str(missing) in failed.get(
        "message", ""
    ), failed
    assert time.monotonic() - started < 180


# -- scenario 6 -------------------------------------------------------------------------------


def test_operator_restart_mid_run(
    cluster: Cluster, arcx: ArcxSystem, namespace: str, tiny_model: Path, shared_dir: Path
) -> None:
    """Scenario 6: the operator is killed (SIGKILL) and restarted mid-run: there is never a
    second JobSet, and the status catches up to Succeeded with all units."""
    name = "survivor"
    out = shared_dir / "survivor"
    body = _cpu_job(cluster, name, model_dir=tiny_model, output=out, shared=shared_dir)
    aej.create(cluster.kube, namespace, body)
    first = wait_for(
        "the JobSet",
        lambda: _jobset(cluster, namespace, name),
        timeout=150,
        describe=_describe(cluster, arcx, namespace, name),
    )
    _kill_operator(cluster, arcx)
    time.sleep(5)
    _restart_operator(cluster, arcx)
    done = _phase(cluster, arcx, namespace, name, "Succeeded", "Failed")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    progress = done["status"]["progress"]
    assert progress["unitsCommitted"] == progress["unitsTotal"] == 8
    jobsets = aej.owned_objects(cluster.kube, namespace, name)["jobsets"]
    assert jobsets == [name]
    last = _jobset(cluster, namespace, name)
    assert last is not None and last["metadata"]["uid"] == first["metadata"]["uid"]


def _kill_operator(cluster: Cluster, arcx: ArcxSystem) -> None:
    if arcx.operator:
        arcx.operator.kill()
    else:
        cluster.kubectl(
            "delete",
            "pod",
            "-n",
            arcx.namespace,
            "-l",
            "app.kubernetes.io/name=arcx",
            "--wait=false",
        )


def _restart_operator(cluster: Cluster, arcx: ArcxSystem) -> None:
    if arcx.operator:
        arcx.operator.start()
