"""A typed view of an ArcExtractionJob, parsed once at the edge from the API server's body.

The API server has already applied the CRD's schema and defaults, so parsing only converts
and checks what the schema cannot (exactly one topology). Core/v1 objects that are passed
through to the pod unchanged (volumes, mounts, tolerations, resources) stay plain mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arcx_operator import constants as c

Body = dict[str, Any]

# The spec sections copied 1:1 into the job config (job_image/src/arcx/config.py).
SHARED_SECTIONS: tuple[str, ...] = (
    "model",
    "dataset",
    "prompt",
    "extraction",
    "generation",
    "batching",
    "engine",
    "output",
    "mesh",
)

DEFAULT_MAX_RESTARTS = 3
DEFAULT_PULL_POLICY = "IfNotPresent"


class SpecError(ValueError):
    """The resource cannot be turned into a JobSet; the message names the field and the fix."""

    reason = c.INVALID_SPEC


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str


@dataclass(frozen=True)
class TpuTopology:
    accelerator: str
    topology: str
    slices: int = 1
    spot: bool = False


@dataclass(frozen=True)
class CpuTopology:
    hosts: int = 1
    slices: int = 1
    resources: Body | None = None


@dataclass(frozen=True)
class JobSpec:
    sections: Mapping[str, Body]
    topology: TpuTopology | CpuTopology
    image: str | None = None
    image_pull_policy: str = DEFAULT_PULL_POLICY
    service_account_name: str | None = None
    automount_service_account_token: bool = False
    max_restarts: int = DEFAULT_MAX_RESTARTS
    suspend: bool = False
    queue_name: str | None = None
    ttl_seconds_after_finished: int | None = None
    volumes: tuple[Body, ...] = ()
    volume_mounts: tuple[Body, ...] = ()
    env: tuple[EnvVar, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Body, ...] = ()

    @property
    def output_uri(self) -> str:
        return str((self.sections.get("output") or {}).get("uri") or "")


@dataclass(frozen=True)
class Resource:
    """One ArcExtractionJob: its identity, its spec, and the status last written."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: JobSpec
    status: Body = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _int(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected an integer, got {value!r}")
    return value


def _topology(raw: Any) -> TpuTopology | CpuTopology:
    topo = raw if isinstance(raw, dict) else {}
    has_tpu, has_cpu = "tpu" in topo, "cpu" in topo
    if has_tpu == has_cpu:
        raise SpecError("spec.topology: set exactly one of topology.tpu or topology.cpu")
    if has_tpu:
        t = topo["tpu"] or {}
        return TpuTopology(
            accelerator=str(t.get("accelerator", "")),
            topology=str(t.get("topology", "")),
            slices=_int(t.get("slices"), "spec.topology.tpu.slices", 1),
            spot=bool(t.get("spot", False)),
        )
    cpu = topo["cpu"] or {}
    return CpuTopology(
        hosts=_int(cpu.get("hosts"), "spec.topology.cpu.hosts", 1),
        slices=_int(cpu.get("slices"), "spec.topology.cpu.slices", 1),
        resources=dict(cpu["resources"]) if cpu.get("resources") else None,
    )


def _entries(spec: Body, key: str) -> tuple[Body, ...]:
    return tuple(dict(v) for v in spec.get(key) or [])


def parse_spec(spec: Body) -> JobSpec:
    ttl = spec.get("ttlSecondsAfterFinished")
    return JobSpec(
        sections={k: spec[k] for k in SHARED_SECTIONS if k in spec},
        topology=_topology(spec.get("topology")),
        image=spec.get("image") or None,
        image_pull_policy=str(spec.get("imagePullPolicy") or DEFAULT_PULL_POLICY),
        service_account_name=spec.get("serviceAccountName") or None,
        automount_service_account_token=bool(spec.get("automountServiceAccountToken", False)),
        max_restarts=_int(spec.get("maxRestarts"), "spec.maxRestarts", DEFAULT_MAX_RESTARTS),
        suspend=bool(spec.get("suspend", False)),
        queue_name=spec.get("queueName") or None,
        ttl_seconds_after_finished=None
        if ttl is None
        else _int(ttl, "spec.ttlSecondsAfterFinished", 0),
        volumes=_entries(spec, "volumes"),
        volume_mounts=_entries(spec, "volumeMounts"),
        env=tuple(EnvVar(str(e["name"]), str(e.get("value", ""))) for e in spec.get("env") or []),
        node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
        tolerations=_entries(spec, "tolerations"),
    )


def parse_resource(body: Mapping[str, Any]) -> Resource:
    """The typed view of a resource body; raises SpecError naming the field."""
    meta = body.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise SpecError("metadata.name: the resource has no name")
    return Resource(
        name=str(name),
        namespace=str(meta.get("namespace") or "default"),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        spec=parse_spec(dict(body.get("spec") or {})),
        status=dict(body.get("status") or {}),
    )
