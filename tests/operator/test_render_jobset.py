"""Rendering an ArcExtractionJob into its ConfigMap and JobSet (pure functions).

Golden files pin the whole output per sample topology; the other tests pin the contracts
one at a time (webhook-free JobSet, failure policy, pod environment, TPU placement).
Regenerate goldens after an intended change with ARCX_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import copy
import os
import re

import pytest
import yaml
from op_helpers import GOLDEN_DIR, as_stored, dump, load_sample, sample_paths

from arcx import exitcodes
from arcx.config import parse_config
from arcx_operator import constants as c
from arcx_operator import render
from arcx_operator.spec import SpecError, parse_resource, parse_spec

SAMPLES = [p.name for p in sample_paths()]


def render_config_map(body: dict) -> dict:
    return render.render_config_map(parse_resource(body))


def render_jobset(body: dict, default_image: str | None = None) -> dict:
    return render.render_jobset(parse_resource(body), default_image)


def job_config(spec: dict) -> dict:
    return render.job_config(parse_spec(spec))


def _render_all(name: str) -> str:
    body = as_stored(load_sample(name))
    return dump(render_config_map(body)) + "---\n" + dump(render_jobset(body))


@pytest.mark.parametrize("name", SAMPLES)
def test_golden(name: str) -> None:
    golden = GOLDEN_DIR / name
    text = _render_all(name)
    if os.environ.get("ARCX_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with ARCX_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"rendering of {name} changed; diff against {golden}"


def test_every_sample_has_a_golden_and_no_golden_is_orphaned() -> None:
    assert sorted(p.name for p in GOLDEN_DIR.glob("*.yaml")) == SAMPLES
    assert {
        "cpu-2x2.yaml",
        "tpu-v5e-16.yaml",
        "tpu-v4-multislice.yaml",
        "kueue-queued.yaml",
    } <= set(SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_rendered_config_is_a_valid_job_config(name: str) -> None:
    body = as_stored(load_sample(name))
    text = render_config_map(body)["data"][c.CONFIG_FILE]
    cfg = parse_config(yaml.safe_load(text), f"{name} ConfigMap")
    topo = body["spec"]["topology"]
    assert cfg.parallelism.slices == (topo.get("tpu") or topo.get("cpu")).get("slices", 1)
    assert cfg.output.uri == body["spec"]["output"]["uri"]


@pytest.mark.parametrize("name", SAMPLES)
def test_jobset_does_not_rely_on_webhook_defaults(name: str) -> None:
    js = render_jobset(as_stored(load_sample(name)))
    spec = js["spec"]
    assert spec["successPolicy"] == {"operator": "All", "targetReplicatedJobs": [c.REPLICATED_JOB]}
    assert spec["network"]["enableDNSHostnames"] is True
    assert spec["network"]["publishNotReadyAddresses"] is True
    assert all(rule["name"] for rule in spec["failurePolicy"]["rules"])
    assert spec["failurePolicy"]["restartStrategy"] == "Recreate"
    (rjob,) = spec["replicatedJobs"]
    job = rjob["template"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["backoffLimit"] == 0
    assert job["parallelism"] == job["completions"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    (container,) = job["template"]["spec"]["containers"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["command"] == ["arcx", "run", "--config", "/etc/arcx/job.yaml"]


def test_exit_codes_match_the_runner() -> None:
    assert c.CONFIG_ERROR_EXIT_CODE == exitcodes.CONFIG_ERROR
    assert c.PREEMPTED_EXIT_CODE == exitcodes.PREEMPTED


# The Job controller's failure messages (k8s.io/kubernetes pkg/controller/job/pod_failure_policy.go).
def _exit_message(code: int, index: int) -> str:
    return f"Container arcx for pod ns/job-slice-0-1-abc failed with exit code {code} matching FailJob rule at index {index}"


def _condition_message(index: int) -> str:
    return f"Pod ns/job-slice-0-1-abc has condition DisruptionTarget matching FailJob rule at index {index}"


def _first_rule(js: dict, reason: str, message: str) -> str:
    """Which JobSet rule applies to a Job that failed with reason and message (first match)."""
    for rule in js["spec"]["failurePolicy"]["rules"]:
        reasons = rule.get("onJobFailureReasons") or []
        patterns = rule.get("onJobFailureMessagePatterns") or []
        if reasons and reason not in reasons:
            continue
        if patterns and not any(re.search(p, message) for p in patterns):
            continue
        return rule["name"]
    return "<default RestartJobSet>"


def test_failure_policy_routes_each_failure_to_its_action() -> None:
    js = render_jobset(as_stored(load_sample("cpu-2x2.yaml")))
    pod_rules = js["spec"]["replicatedJobs"][0]["template"]["spec"]["podFailurePolicy"]["rules"]
    index_of = {}
    for i, rule in enumerate(pod_rules):
        assert rule["action"] == "FailJob"
        if "onPodConditions" in rule:
            index_of["disruption"] = i
        else:
            assert rule["onExitCodes"]["containerName"] == c.CONTAINER_NAME
            (code,) = rule["onExitCodes"]["values"]
            index_of[code] = i
    actions = {r["name"]: r["action"] for r in js["spec"]["failurePolicy"]["rules"]}

    config_error = _first_rule(js, "PodFailurePolicy", _exit_message(78, index_of[78]))
    preempted = _first_rule(js, "PodFailurePolicy", _condition_message(index_of["disruption"]))
    sigterm = _first_rule(js, "PodFailurePolicy", _exit_message(75, index_of[75]))
    crash = _first_rule(js, "BackoffLimitExceeded", "Job has reached the specified backoff limit")

    assert actions[config_error] == "FailJobSet"
    assert actions[preempted] == "RestartJobSetAndIgnoreMaxRestarts"
    assert actions[sigterm] == "RestartJobSetAndIgnoreMaxRestarts"
    assert actions[crash] == "RestartJobSet"
    assert js["spec"]["failurePolicy"]["maxRestarts"] == 2


def _pod(js: dict) -> dict:
    return js["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]


def _env(js: dict) -> dict:
    return {e["name"]: e for e in _pod(js)["containers"][0]["env"]}


def test_cpu_pod_environment_contract() -> None:
    js = render_jobset(as_stored(load_sample("cpu-2x2.yaml")))
    env = _env(js)
    assert (
        env["JAX_COORDINATOR_ADDRESS"]["value"]
        == "cpu-small-slice-$(ARCX_SLICE_INDEX)-0.cpu-small:8476"
    )
    assert env["JAX_NUM_PROCESSES"]["value"] == "2"
    assert env["JAX_PROCESS_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert env["ARCX_SLICE_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['jobset.sigs.k8s.io/job-index']"
    )
    # $(VAR) expansion only sees variables defined earlier in the list.
    names = [e["name"] for e in _pod(js)["containers"][0]["env"]]
    assert names.index("ARCX_SLICE_INDEX") < names.index("JAX_COORDINATOR_ADDRESS")
    assert js["spec"]["replicatedJobs"][0]["replicas"] == 2
    assert "nodeSelector" not in _pod(js)


def test_tpu_v5e_spot_placement() -> None:
    js = render_jobset(as_stored(load_sample("tpu-v5e-16.yaml")))
    pod = _pod(js)
    job = js["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert job["parallelism"] == job["completions"] == 4
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "4x4",
        "cloud.google.com/gke-spot": "true",
    }
    assert {t["key"] for t in pod["tolerations"]} == {"google.com/tpu", "cloud.google.com/gke-spot"}
    res = pod["containers"][0]["resources"]
    assert res["limits"]["google.com/tpu"] == res["requests"]["google.com/tpu"] == "4"
    assert js["metadata"]["annotations"] == {
        "alpha.jobset.sigs.k8s.io/exclusive-topology": "cloud.google.com/gke-nodepool"
    }
    assert not any(e.startswith("JAX_") for e in _env(js)), "on TPU, JAX autodetects its cluster"


def test_tpu_multislice_replicas_and_ttl() -> None:
    js = render_jobset(as_stored(load_sample("tpu-v4-multislice.yaml")))
    assert js["spec"]["replicatedJobs"][0]["replicas"] == 4
    assert js["spec"]["ttlSecondsAfterFinished"] == 86400
    assert "cloud.google.com/gke-spot" not in _pod(js)["nodeSelector"]


def test_single_host_tpu_has_no_exclusive_annotation() -> None:
    js = render_jobset(as_stored(load_sample("kueue-queued.yaml")))
    assert "annotations" not in js["metadata"]
    assert _pod(js)["containers"][0]["resources"]["limits"]["google.com/tpu"] == "8"


def test_kueue_queue_label_and_created_suspended() -> None:
    js = render_jobset(as_stored(load_sample("kueue-queued.yaml")))
    assert js["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "tpu-v6e"
    assert js["spec"]["suspend"] is True
    plain = render_jobset(as_stored(load_sample("cpu-2x2.yaml")))
    assert plain["spec"]["suspend"] is False
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]


def test_suspend_creates_the_jobset_suspended() -> None:
    body = as_stored(load_sample("cpu-2x2.yaml"))
    body["spec"]["suspend"] = True
    assert render_jobset(body)["spec"]["suspend"] is True


def test_everything_is_owned_by_the_resource() -> None:
    body = as_stored(load_sample("cpu-2x2.yaml"), uid="abc-123")
    for obj in (render_config_map(body), render_jobset(body)):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "arcx.dev/v1alpha1",
            "kind": "ArcExtractionJob",
            "name": "cpu-small",
            "uid": "abc-123",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert obj["metadata"]["namespace"] == "research"


def test_config_map_is_mounted_where_arcx_run_reads_it() -> None:
    body = as_stored(load_sample("tpu-v5e-16.yaml"))
    pod = _pod(render_jobset(body))
    volume, *scratch = pod["volumes"]
    assert volume["configMap"]["name"] == render_config_map(body)["metadata"]["name"]
    mount, *writable = pod["containers"][0]["volumeMounts"]
    assert (mount["name"], mount["mountPath"]) == (volume["name"], "/etc/arcx")
    # Only the read-only root filesystem's writable directories come with it.
    assert [v["name"] for v in scratch] == [c.HOME_VOLUME, c.TMP_VOLUME]
    assert all(v["emptyDir"] == {} for v in scratch)
    assert [m["mountPath"] for m in writable] == [c.HOME_DIR, c.TMP_DIR]


def test_spec_volumes_and_mounts_follow_the_config_volume() -> None:
    body = as_stored(load_sample("cpu-2x2.yaml"))
    body["spec"]["volumes"] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "arcx-data"}},
        {"name": "models", "csi": {"driver": "gcsfuse.csi.storage.gke.io", "readOnly": True}},
    ]
    body["spec"]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"},
        {"name": "models", "mountPath": "/models", "readOnly": True, "subPath": "qwen"},
    ]
    pod = _pod(render_jobset(body))
    own = [c.CONFIG_VOLUME, c.HOME_VOLUME, c.TMP_VOLUME]
    assert [v["name"] for v in pod["volumes"]] == [*own, "data", "models"]
    assert pod["volumes"][len(own) :] == body["spec"]["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert mounts[0] == {"name": c.CONFIG_VOLUME, "mountPath": c.CONFIG_DIR, "readOnly": True}
    assert mounts[len(own) :] == body["spec"]["volumeMounts"]
    # The job config is unchanged by volumes: they are pod options, not job config.
    assert "volumes" not in job_config(body["spec"])


def test_env_node_selector_and_tolerations_pass_through() -> None:
    body = as_stored(load_sample("tpu-v5e-16.yaml"))
    body["spec"]["env"] = [{"name": "XLA_FLAGS", "value": "--xla_dump_to=/tmp"}]
    body["spec"]["nodeSelector"] = {"pool": "big", c.TPU_TOPOLOGY_SELECTOR: "1x1"}
    extra = {"key": "dedicated", "operator": "Equal", "value": "arcx", "effect": "NoSchedule"}
    body["spec"]["tolerations"] = [extra]
    pod = _pod(render_jobset(body))
    env = pod["containers"][0]["env"]
    assert env[-1] == {"name": "XLA_FLAGS", "value": "--xla_dump_to=/tmp"}
    assert env[0]["name"] == c.ENV_SLICE_INDEX
    # The TPU placement wins over a conflicting user selector.
    assert pod["nodeSelector"][c.TPU_TOPOLOGY_SELECTOR] == "4x4"
    assert pod["nodeSelector"]["pool"] == "big"
    assert pod["tolerations"][0]["key"] == c.TPU_RESOURCE and pod["tolerations"][-1] == extra


def test_cpu_pods_have_no_selector_unless_asked() -> None:
    body = as_stored(load_sample("cpu-2x2.yaml"))
    pod = _pod(render_jobset(body))
    assert "nodeSelector" not in pod and "tolerations" not in pod
    body["spec"]["nodeSelector"] = {"kubernetes.io/arch": "amd64"}
    pod = _pod(render_jobset(body))
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}


def test_default_image_fills_in_and_missing_image_is_an_error() -> None:
    body = as_stored(load_sample("cpu-2x2.yaml"))
    del body["spec"]["image"]
    js = render_jobset(body, default_image="registry.local/arcx-job:1")
    assert _pod(js)["containers"][0]["image"] == "registry.local/arcx-job:1"
    with pytest.raises(SpecError, match=r"spec\.image"):
        render_jobset(body)


@pytest.mark.parametrize(
    ("topology", "match"),
    [
        ({}, r"exactly one of topology\.tpu or topology\.cpu"),
        (
            {"cpu": {"hosts": 1}, "tpu": {"accelerator": "tpu-v4-podslice", "topology": "2x2x1"}},
            "exactly one",
        ),
        (
            {"tpu": {"accelerator": "tpu-v4-podslice", "topology": "4x4"}},
            r"spec\.topology\.tpu: topology '4x4'",
        ),
    ],
)
def test_bad_topology_is_a_render_error_naming_the_field(topology: dict, match: str) -> None:
    body = as_stored(load_sample("cpu-2x2.yaml"))
    body["spec"]["topology"] = topology
    with pytest.raises(SpecError, match=match):
        render_jobset(body)


def test_rendering_is_pure() -> None:
    body = as_stored(load_sample("tpu-v5e-16.yaml"))
    before = copy.deepcopy(body)
    assert render_jobset(body) == render_jobset(body)
    assert body == before


def test_null_fields_are_dropped_from_the_job_config() -> None:
    spec = load_sample("cpu-2x2.yaml")["spec"]
    spec["dataset"]["maxTasks"] = None
    assert "maxTasks" not in job_config(spec)["dataset"]
    parse_config(job_config(spec))


def test_job_pods_run_as_the_images_user_with_nothing_extra() -> None:
    """The security context names the Dockerfile's user; the root filesystem is read-only
    and only the emptyDirs are writable; no token unless the spec asks."""
    dockerfile = (GOLDEN_DIR.parents[2] / "Dockerfile").read_text()
    assert f"--uid {c.JOB_USER_ID} --gid {c.JOB_GROUP_ID}" in dockerfile
    assert dockerfile.count(f"USER {c.JOB_USER_ID}:{c.JOB_GROUP_ID}") >= 3  # every image
    assert f"HOME={c.HOME_DIR}" in dockerfile
    body = as_stored(load_sample("cpu-2x2.yaml"))
    pod = _pod(render_jobset(body))
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": c.JOB_USER_ID,
        "runAsGroup": c.JOB_GROUP_ID,
        "fsGroup": c.JOB_GROUP_ID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["privileged"] is False
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["HOME"], env["TMPDIR"]) == (c.HOME_DIR, c.TMP_DIR)
    assert pod["automountServiceAccountToken"] is False
    body["spec"]["automountServiceAccountToken"] = True
    assert _pod(render_jobset(body))["automountServiceAccountToken"] is True
