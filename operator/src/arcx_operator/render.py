"""Desired objects for one ArcExtractionJob: the job config, its ConfigMap and the JobSet.

Pure functions of the resource body (a plain dict as the API server returns it). Nothing
here relies on JobSet's mutating webhook: every field the webhook would default is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from arcx_operator import constants as c
from arcx_operator import storage, tpu

Body = dict[str, Any]

# The spec sections copied 1:1 into the job config (job_image/src/arcx/config.py).
SHARED_SECTIONS: tuple[str, ...] = (
    "model",
    "dataset",
    "prompt",
    "extraction",
    "generation",
    "batching",
    "output",
    "mesh",
)

DEFAULT_MAX_RESTARTS = 3
DEFAULT_PULL_POLICY = "IfNotPresent"
DEFAULT_CPU_RESOURCES: dict[str, Any] = {"requests": {"cpu": "1", "memory": "2Gi"}}
TERMINATION_GRACE_SECONDS = 60


class RenderError(ValueError):
    """The resource cannot be rendered; the message names the field and what to do."""


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


def placement(spec: Body) -> Placement:
    topo = spec.get("topology") or {}
    has_tpu, has_cpu = "tpu" in topo, "cpu" in topo
    if has_tpu == has_cpu:
        raise RenderError("spec.topology: set exactly one of topology.tpu or topology.cpu")
    if has_tpu:
        t = topo["tpu"]
        try:
            shape = tpu.slice_shape(t.get("accelerator", ""), t.get("topology", ""))
        except tpu.UnknownTopology as err:
            raise RenderError(f"spec.topology.tpu: {err}") from None
        return Placement(int(t.get("slices", 1)), shape.hosts, shape, bool(t.get("spot", False)))
    cpu = topo["cpu"]
    return Placement(int(cpu.get("slices", 1)), int(cpu.get("hosts", 1)), None)


def job_config(spec: Body) -> Body:
    """The `arcx run` configuration: the shared sections plus parallelism from the topology."""
    config: Body = {k: _drop_nulls(spec[k]) for k in SHARED_SECTIONS if k in spec}
    config["parallelism"] = {"slices": placement(spec).slices}
    return config


def _metadata(body: Body) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace") or "default"
    if not name:
        raise RenderError("metadata.name: the resource has no name")
    return name, namespace


def owner_reference(body: Body) -> Body:
    name, _ = _metadata(body)
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": name,
        "uid": body["metadata"].get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _labels(name: str) -> dict[str, str]:
    return {c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE, c.JOB_NAME_LABEL: name}


def render_config_map(body: Body) -> Body:
    name, namespace = _metadata(body)
    text = yaml.safe_dump(job_config(body.get("spec") or {}), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": c.config_map_name(name),
            "namespace": namespace,
            "labels": _labels(name),
            "ownerReferences": [owner_reference(body)],
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


def _container(spec: Body, jobset: str, place: Placement, default_image: str | None) -> Body:
    image = spec.get("image") or default_image
    if not image:
        raise RenderError(
            "spec.image: no job image; set spec.image or start the operator with --default-job-image"
        )
    container: Body = {
        "name": c.CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": spec.get("imagePullPolicy", DEFAULT_PULL_POLICY),
        "command": ["arcx", "run", "--config", c.CONFIG_PATH],
        "env": _env(jobset, place) + storage.extra_env(spec),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": storage.container_mounts(spec),
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if place.tpu is None:
        cpu = spec["topology"]["cpu"]
        container["resources"] = _drop_nulls(cpu.get("resources") or DEFAULT_CPU_RESOURCES)
        container["ports"] = [{"name": "coordinator", "containerPort": c.COORDINATOR_PORT}]
    else:
        chips = str(place.tpu.chips_per_host)
        container["resources"] = {
            "requests": {c.TPU_RESOURCE: chips},
            "limits": {c.TPU_RESOURCE: chips},
        }
    return container


def _pod_spec(
    spec: Body, jobset: str, config_map: str, place: Placement, default_image: str | None
) -> Body:
    pod: Body = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "containers": [_container(spec, jobset, place, default_image)],
        "volumes": storage.pod_volumes(spec, config_map),
    }
    if spec.get("serviceAccountName"):
        pod["serviceAccountName"] = spec["serviceAccountName"]
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
    if selector := storage.node_selector(spec, selector):
        pod["nodeSelector"] = selector
    if tolerations := storage.tolerations(spec, tolerations):
        pod["tolerations"] = tolerations
    return pod


def pod_failure_policy() -> Body:
    """Fail the Job at once on a disruption, a configuration error or a clean SIGTERM stop.

    The JobSet failure policy then tells them apart by the Job's failure message.
    """
    return {
        "rules": [
            {
                "action": "FailJob",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": c.CONTAINER_NAME,
                    "operator": "In",
                    "values": [c.CONFIG_ERROR_EXIT_CODE],
                },
            },
            {
                "action": "FailJob",
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
        "restartStrategy": "Recreate",
        "rules": [
            {
                "name": c.RULE_CONFIG_ERROR,
                "action": "FailJobSet",
                "onJobFailureReasons": ["PodFailurePolicy"],
                "onJobFailureMessagePatterns": [
                    f"failed with exit code {c.CONFIG_ERROR_EXIT_CODE} matching FailJob rule"
                ],
                "targetReplicatedJobs": [c.REPLICATED_JOB],
            },
            {
                "name": c.RULE_PREEMPTION,
                "action": "RestartJobSetAndIgnoreMaxRestarts",
                "onJobFailureReasons": ["PodFailurePolicy"],
                "onJobFailureMessagePatterns": [
                    "has condition DisruptionTarget matching FailJob rule",
                    f"failed with exit code {c.PREEMPTED_EXIT_CODE} matching FailJob rule",
                ],
                "targetReplicatedJobs": [c.REPLICATED_JOB],
            },
            {
                "name": c.RULE_CRASH,
                "action": "RestartJobSet",
                "targetReplicatedJobs": [c.REPLICATED_JOB],
            },
        ],
    }


def initial_suspend(spec: Body) -> bool:
    """A queued job starts suspended so Kueue admits it; `suspend` holds it either way."""
    return bool(spec.get("suspend", False)) or bool(spec.get("queueName"))


def render_jobset(body: Body, default_image: str | None = None) -> Body:
    name, namespace = _metadata(body)
    spec = body.get("spec") or {}
    place = placement(spec)
    jobset = c.jobset_name(name)
    labels = _labels(name)
    metadata: Body = {
        "name": jobset,
        "namespace": namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(body)],
    }
    if spec.get("queueName"):
        metadata["labels"][c.KUEUE_QUEUE_LABEL] = spec["queueName"]
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
            "metadata": {"labels": dict(labels)},
            "spec": _pod_spec(spec, jobset, c.config_map_name(name), place, default_image),
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
        "failurePolicy": failure_policy(int(spec.get("maxRestarts", DEFAULT_MAX_RESTARTS))),
        "replicatedJobs": [
            {
                "name": c.REPLICATED_JOB,
                "replicas": place.slices,
                "template": {"metadata": {"labels": dict(labels)}, "spec": job_spec},
            }
        ],
    }
    if spec.get("ttlSecondsAfterFinished") is not None:
        js_spec["ttlSecondsAfterFinished"] = int(spec["ttlSecondsAfterFinished"])
    return {
        "apiVersion": c.JOBSET_API_VERSION,
        "kind": "JobSet",
        "metadata": metadata,
        "spec": js_spec,
    }
