"""Desired objects for one ArcExtractionJob: the job config, its ConfigMap and the JobSet.

Pure functions of the typed resource (``spec.Resource``). Nothing here relies on JobSet's
mutating webhook: every field the webhook would default is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from arcx_operator import constants as c
from arcx_operator import podspec, tpu
from arcx_operator.spec import SHARED_SECTIONS, CpuTopology, JobSpec, Resource, SpecError

Body = dict[str, Any]

DEFAULT_CPU_RESOURCES: dict[str, Any] = {"requests": {"cpu": "1", "memory": "2Gi"}}
TERMINATION_GRACE_SECONDS = 60


@dataclass(frozen=True)
class Placement:
    """How one slice is laid out: pods per slice and what each pod asks for."""

    slices: int
    hosts: int
    tpu: tpu.SliceShape | None  # None for the CPU topology
    spot: bool = False


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def placement(spec: JobSpec) -> Placement:
    topo = spec.topology
    if isinstance(topo, CpuTopology):
        return Placement(topo.slices, topo.hosts, None)
    try:
        shape = tpu.slice_shape(topo.accelerator, topo.topology)
    except tpu.UnknownTopology as err:
        raise SpecError(f"spec.topology.tpu: {err}") from None
    return Placement(topo.slices, shape.hosts, shape, topo.spot)


def job_config(spec: JobSpec) -> Body:
    """The `arcx run` configuration: the shared sections plus parallelism from the topology."""
    config: Body = {k: _drop_nulls(spec.sections[k]) for k in SHARED_SECTIONS if k in spec.sections}
    config["parallelism"] = {"slices": placement(spec).slices}
    return config


def owner_reference(res: Resource) -> Body:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": res.name,
        "uid": res.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(name: str) -> dict[str, str]:
    """The labels on everything made for resource ``name`` (ConfigMap, JobSet, Jobs, pods)."""
    return {c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE, c.JOB_NAME_LABEL: name}


def render_config_map(res: Resource) -> Body:
    text = yaml.safe_dump(job_config(res.spec), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": c.config_map_name(res.name),
            "namespace": res.namespace,
            "labels": labels(res.name),
            "ownerReferences": [owner_reference(res)],
        },
        "data": {c.CONFIG_FILE: text},
    }


def _field_env(name: str, path: str) -> Body:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _env(jobset: str, place: Placement) -> list[Body]:
    env = [_field_env(c.ENV_SLICE_INDEX, f"metadata.labels['{c.JOB_INDEX_LABEL}']")]
    if place.tpu is None:
        # Host 0 of the same slice; $(VAR) expands the slice index defined just above.
        coordinator = (
            f"{jobset}-{c.REPLICATED_JOB}-$({c.ENV_SLICE_INDEX})-0.{jobset}:{c.COORDINATOR_PORT}"
        )
        env += [
            {"name": c.ENV_COORDINATOR, "value": coordinator},
            {"name": c.ENV_NUM_PROCESSES, "value": str(place.hosts)},
            _field_env(
                c.ENV_PROCESS_ID, f"metadata.annotations['{c.COMPLETION_INDEX_ANNOTATION}']"
            ),
        ]
    return env


def _container(spec: JobSpec, jobset: str, place: Placement, default_image: str | None) -> Body:
    image = spec.image or default_image
    if not image:
        raise SpecError(
            "spec.image: no job image; set spec.image or start the operator with --default-job-image"
        )
    container: Body = {
        "name": c.CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["arcx", "run", "--config", c.CONFIG_PATH],
        "env": _env(jobset, place) + podspec.own_env() + podspec.extra_env(spec),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": podspec.container_mounts(spec),
        "securityContext": podspec.container_security_context(),
    }
    if isinstance(spec.topology, CpuTopology):
        container["resources"] = _drop_nulls(spec.topology.resources or DEFAULT_CPU_RESOURCES)
        container["ports"] = [{"name": "coordinator", "containerPort": c.COORDINATOR_PORT}]
    elif place.tpu is not None:
        chips = str(place.tpu.chips_per_host)
        container["resources"] = {
            "requests": {c.TPU_RESOURCE: chips},
            "limits": {c.TPU_RESOURCE: chips},
        }
    return container


def _pod_spec(
    spec: JobSpec, jobset: str, config_map: str, place: Placement, default_image: str | None
) -> Body:
    pod: Body = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        # The job reads GCS through Workload Identity's metadata server, not a token file.
        "automountServiceAccountToken": spec.automount_service_account_token,
        "securityContext": podspec.pod_security_context(),
        "containers": [_container(spec, jobset, place, default_image)],
        "volumes": podspec.pod_volumes(spec, config_map),
    }
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    selector: dict[str, str] = {}
    tolerations: list[Body] = []
    if place.tpu is not None:
        selector = {
            c.TPU_ACCELERATOR_SELECTOR: place.tpu.accelerator,
            c.TPU_TOPOLOGY_SELECTOR: place.tpu.topology,
        }
        tolerations = [{"key": c.TPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
        if place.spot:
            selector[c.SPOT_SELECTOR] = "true"
            tolerations.append(
                {
                    "key": c.SPOT_SELECTOR,
                    "operator": "Equal",
                    "value": "true",
                    "effect": "NoSchedule",
                }
            )
    if selector := podspec.node_selector(spec, selector):
        pod["nodeSelector"] = selector
    if tolerations := podspec.tolerations(spec, tolerations):
        pod["tolerations"] = tolerations
    return pod


def pod_failure_policy() -> Body:
    """Fail the Job at once on a disruption, a configuration error or a clean SIGTERM stop.

    The JobSet failure policy then tells them apart by the Job's failure message.
    """
    return {
        "rules": [
            {
                "action": c.POD_ACTION_FAIL_JOB,
                "onPodConditions": [{"type": c.POD_CONDITION_DISRUPTION, "status": "True"}],
            },
            {
                "action": c.POD_ACTION_FAIL_JOB,
                "onExitCodes": {
                    "containerName": c.CONTAINER_NAME,
                    "operator": "In",
                    "values": [c.CONFIG_ERROR_EXIT_CODE],
                },
            },
            {
                "action": c.POD_ACTION_FAIL_JOB,
                "onExitCodes": {
                    "containerName": c.CONTAINER_NAME,
                    "operator": "In",
                    "values": [c.PREEMPTED_EXIT_CODE],
                },
            },
        ]
    }


def failure_policy(max_restarts: int) -> Body:
    """Config error: fail now. Preemption: restart, not counted. Anything else: restart, counted."""
    return {
        "maxRestarts": max_restarts,
        "restartStrategy": c.RESTART_STRATEGY,
        "rules": [
            {
                "name": c.RULE_CONFIG_ERROR,
                "action": c.JobSetAction.FAIL_JOBSET.value,
                "onJobFailureReasons": [c.JOB_REASON_POD_FAILURE_POLICY],
                "onJobFailureMessagePatterns": [
                    c.JOB_MESSAGE_EXIT_CODE.format(code=c.CONFIG_ERROR_EXIT_CODE)
                ],
                "targetReplicatedJobs": [c.REPLICATED_JOB],
            },
            {
                "name": c.RULE_PREEMPTION,
                "action": c.JobSetAction.RESTART_IGNORING_MAX.value,
                "onJobFailureReasons": [c.JOB_REASON_POD_FAILURE_POLICY],
                "onJobFailureMessagePatterns": [
                    c.JOB_MESSAGE_DISRUPTION,
                    c.JOB_MESSAGE_EXIT_CODE.format(code=c.PREEMPTED_EXIT_CODE),
                ],
                "targetReplicatedJobs": [c.REPLICATED_JOB],
            },
            {
                "name": c.RULE_CRASH,
                "action": c.JobSetAction.RESTART_JOBSET.value,
                "targetReplicatedJobs": [c.REPLICATED_JOB],
            },
        ],
    }


def initial_suspend(spec: JobSpec) -> bool:
    """A queued job starts suspended so Kueue admits it; `suspend` holds it either way."""
    return spec.suspend or spec.queue_name is not None


def render_jobset(res: Resource, default_image: str | None = None) -> Body:
    spec = res.spec
    place = placement(spec)
    jobset = c.jobset_name(res.name)
    own = labels(res.name)
    metadata: Body = {
        "name": jobset,
        "namespace": res.namespace,
        "labels": dict(own),
        "ownerReferences": [owner_reference(res)],
    }
    if spec.queue_name:
        metadata["labels"][c.KUEUE_QUEUE_LABEL] = spec.queue_name
    if place.tpu is not None and place.hosts > 1:
        # One slice per node pool: a multi-host slice must not share its pool with another.
        metadata["annotations"] = {c.EXCLUSIVE_TOPOLOGY_ANNOTATION: c.NODE_POOL_LABEL}
    job_spec: Body = {
        "completionMode": "Indexed",
        "parallelism": place.hosts,
        "completions": place.hosts,
        "backoffLimit": 0,
        "podFailurePolicy": pod_failure_policy(),
        "template": {
            "metadata": {"labels": dict(own)},
            "spec": _pod_spec(spec, jobset, c.config_map_name(res.name), place, default_image),
        },
    }
    js_spec: Body = {
        "suspend": initial_suspend(spec),
        "network": {
            "enableDNSHostnames": True,
            "subdomain": jobset,
            "publishNotReadyAddresses": True,
        },
        "successPolicy": {"operator": "All", "targetReplicatedJobs": [c.REPLICATED_JOB]},
        "failurePolicy": failure_policy(spec.max_restarts),
        "replicatedJobs": [
            {
                "name": c.REPLICATED_JOB,
                "replicas": place.slices,
                "template": {"metadata": {"labels": dict(own)}, "spec": job_spec},
            }
        ],
    }
    if spec.ttl_seconds_after_finished is not None:
        js_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return {
        "apiVersion": c.JOBSET_API_VERSION,
        "kind": "JobSet",
        "metadata": metadata,
        "spec": js_spec,
    }
