"""The ArcExtractionJob CustomResourceDefinition, built from the job config's JSON schema.

The shared spec sections (model, dataset, ...) are converted from the JSON schema pydantic
produces for ``arcx.config.JobConfig`` (passed in, so this package never imports arcx), then
completed with what JSON schema cannot carry: descriptions, bounds CEL cost estimation needs,
list semantics, cross-field rules and immutability. ``hack/gen-crd.py`` writes the result to
manifests/ and the chart; a test regenerates it and compares, so the two cannot drift.
"""

from __future__ import annotations

import copy
from typing import Any

from arcx_store.plan import COUNT_FIELDS, NUMBER_FIELDS

from arcx_operator import constants as c
from arcx_operator import podspec, policy, spec, tpu
from arcx_operator.constants import Phase

Schema = dict[str, Any]

# Descriptions for fields whose pydantic definition has none, keyed "section.field".
DESCRIPTIONS: dict[str, str] = {
    "model": "The model to run: a Qwen2-family checkpoint in HF safetensors layout.",
    "model.dtype": "Parameter dtype on device.",
    "dataset": "The ARC tasks to run over.",
    "dataset.maxTasks": "Use at most this many tasks (all when unset).",
    "dataset.seed": "Seed for task selection order.",
    "prompt": "How a task becomes a prompt.",
    "prompt.encoder": "Grid encoder spec, arc24 style, parsed without eval.",
    "prompt.template": "Prompt layout.",
    "prompt.augmentation": "Deterministic task augmentation.",
    "prompt.augmentation.dihedral": "identity, or a random dihedral transform per task.",
    "prompt.augmentation.permuteColors": "Permute colours 1-9 per task.",
    "prompt.augmentation.seed": "Seed for augmentation choices.",
    "extraction": "Which activations to record.",
    "extraction.layers": "Decoder layer indexes to capture (0-based, unique).",
    "extraction.sites": "TransformerLens-style hook sites to capture at each layer.",
    "extraction.positions": "Token positions to keep: all, prompt, answer or last.",
    "extraction.dtype": "dtype of the stored activations.",
    "extraction.teacherForcing": "Score and capture the known answer in one forward pass.",
    "generation": "Greedy generation after the prompt.",
    "generation.maxNewTokens": "Tokens to generate per task; 0 means prefill only.",
    "batching": "Length-bucketed batching.",
    "batching.tokensPerBatch": "Token budget of one batch (rows x padded length).",
    "batching.maxSeqLen": "Longest prompt accepted; longer tasks are skipped and reported.",
    "engine": "How the forward pass runs: attention kernel, sequence packing, compilation cache.",
    "output": "Where the activation store is written.",
    "mesh": "Device mesh of each slice.",
}

# Upper bounds the CEL cost estimator needs (JobConfig leaves them open), keyed like above.
MAX_LENGTHS: dict[str, int] = {
    "model.source": 2048,
    "dataset.source": 2048,
    "prompt.encoder": 1024,
    "engine.compilationCache": 2048,
    "output.uri": 2048,
}
MAX_ITEMS: dict[str, int] = {"extraction.layers": 1024, "extraction.sites": 5}
# Rules JobConfig enforces in validators, restated for the API server.
ITEM_MINIMUMS: dict[str, int] = {"extraction.layers": 0}
SET_LISTS: tuple[str, ...] = ("extraction.layers", "extraction.sites")
# Each mirrors a validator of arcx.config (same message), so the API server refuses what the
# pod would refuse with exit code 78; tests/operator/test_crd_validation.py sends each to a
# real API server and test_crd_schema.py checks parse_config refuses the same bodies. What
# CEL cannot check (the encoder spec's grammar, layers against the model's depth) stays
# the pod's.
SECTION_RULES: dict[str, list[Schema]] = {
    "batching": [
        {
            "rule": "self.tokensPerBatch >= self.maxSeqLen",
            "message": "tokensPerBatch must be >= maxSeqLen so the longest prompt fits",
            "fieldPath": ".tokensPerBatch",
        }
    ],
    "extraction": [
        {
            "rule": "self.positions != 'answer' || self.teacherForcing",
            "message": "positions: 'answer' needs teacherForcing: true "
            "(without it the sequences hold no answer tokens)",
            "fieldPath": ".positions",
        },
        {
            "rule": "!has(self.scoring) || !self.scoring || self.teacherForcing",
            "message": "scoring: true needs teacherForcing: true "
            "(without it there is no answer to score)",
            "fieldPath": ".scoring",
        },
    ],
    "output": [
        {
            "rule": "self.uri.trim() != ''",
            "message": "uri must not be empty (it would write into the working directory)",
            "fieldPath": ".uri",
        },
        {
            "rule": "!self.uri.contains('://') || self.uri.startsWith('gs://') "
            "|| self.uri.startsWith('file://')",
            "message": "unsupported URI: use gs://bucket/prefix or a path",
            "fieldPath": ".uri",
        },
    ],
}
# Sections whose change would change the bytes written (or where they go): immutable.
# Each is always present (required or defaulted), so `self == oldSelf` on it always runs.
IMMUTABLE: tuple[str, ...] = (*spec.SHARED_SECTIONS, "topology")
# Optional fields that may not be added, changed or removed once the resource exists.
IMMUTABLE_OPTIONAL: tuple[str, ...] = ("queueName",)

_DROP = {"title", "additionalProperties"}


# Both topologies count slices the same way (one JAX cluster each; unit u -> slice u % slices).
_SLICES: dict[str, Any] = {
    "type": "integer",
    "minimum": 1,
    "maximum": 64,
    "default": 1,
    "description": "Independent slices; unit u runs on slice u % slices.",
}


def _resolve(node: Schema, defs: Schema) -> Schema:
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return node


def openapi_from_json_schema(node: Schema, defs: Schema) -> Schema:
    """Convert one pydantic JSON-schema node to a structural OpenAPI v3 schema."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {node['anyOf']} structurally")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**_resolve(options[0], defs), **rest}
        if node.get("default", 0) is None:
            del node["default"]
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {k: openapi_from_json_schema(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = openapi_from_json_schema(value, defs)
        else:
            out[key] = copy.deepcopy(value)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _walk(schema: Schema, path: str) -> Schema:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
    return node


def shared_sections(job_config_schema: Schema) -> Schema:
    """The spec properties shared with the job config, with the CRD-only additions applied."""
    defs = job_config_schema.get("$defs", {})
    props = job_config_schema["properties"]
    sections = {k: openapi_from_json_schema(props[k], defs) for k in spec.SHARED_SECTIONS}
    root = {"properties": sections}
    for path, text in DESCRIPTIONS.items():
        _walk(root, path).setdefault("description", text)
    for path, n in MAX_LENGTHS.items():
        _walk(root, path)["maxLength"] = n
    for path, n in MAX_ITEMS.items():
        _walk(root, path)["maxItems"] = n
    for path, n in ITEM_MINIMUMS.items():
        _walk(root, path)["items"]["minimum"] = n
    for path in SET_LISTS:
        _walk(root, path)["x-kubernetes-list-type"] = "set"
    for path, rules in SECTION_RULES.items():
        _walk(root, path).setdefault("x-kubernetes-validations", []).extend(copy.deepcopy(rules))
    return sections


def _int_or_string_map(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        },
    }


def _cel_string_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def topology_schema() -> Schema:
    by_accelerator = ", ".join(
        f"'{g.accelerator}': {_cel_string_list(g.single_host + g.multi_host)}"
        for g in tpu.GENERATIONS
    )
    return {
        "type": "object",
        "description": "Where the pods run: exactly one of tpu (GKE TPU slices) or cpu (any cluster).",
        "x-kubernetes-validations": [
            {
                "rule": "has(self.tpu) != has(self.cpu)",
                "message": "set exactly one of topology.tpu or topology.cpu",
            }
        ],
        "properties": {
            "tpu": {
                "type": "object",
                "description": "GKE TPU slices; each slice is one indexed Job with one pod per TPU host.",
                "required": ["accelerator", "topology"],
                "x-kubernetes-validations": [
                    {
                        "rule": f"self.topology in {{{by_accelerator}}}[self.accelerator]",
                        "message": "topology is not offered for this accelerator (see docs/operator.md for the table)",
                        "fieldPath": ".topology",
                    }
                ],
                "properties": {
                    "accelerator": {
                        "type": "string",
                        "enum": list(tpu.ACCELERATORS),
                        "description": "The value of the node label cloud.google.com/gke-tpu-accelerator.",
                    },
                    "topology": {
                        "type": "string",
                        "maxLength": 16,
                        "description": "Chip arrangement of one slice, e.g. 4x4 or 2x2x2.",
                    },
                    "slices": dict(_SLICES),  # a copy each: YAML would anchor a shared object
                    "spot": {
                        "type": "boolean",
                        "default": False,
                        "description": "Run on Spot VMs (selector and toleration cloud.google.com/gke-spot).",
                    },
                },
            },
            "cpu": {
                "type": "object",
                "description": "CPU pods for kind and local clusters, with the JAX coordinator environment.",
                "properties": {
                    "hosts": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 64,
                        "default": 1,
                        "description": "Pods (JAX processes) per slice.",
                    },
                    "slices": dict(_SLICES),  # a copy each: YAML would anchor a shared object
                    "resources": {
                        "type": "object",
                        "description": "Container resources of each pod (requests and limits).",
                        "properties": {
                            "requests": _int_or_string_map(
                                "Minimum resources, e.g. cpu: 1, memory: 4Gi."
                            ),
                            "limits": _int_or_string_map("Maximum resources, e.g. memory: 6Gi."),
                        },
                    },
                },
            },
        },
    }


DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_VOLUMES = 16
MAX_TOLERATIONS = 16


def _str(description: str, max_length: int, **extra: Any) -> Schema:
    return {"type": "string", "maxLength": max_length, "description": description, **extra}


def _bool(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def _volume_sources() -> Schema:
    typed: Schema = {
        "persistentVolumeClaim": {
            "type": "object",
            "description": "A PersistentVolumeClaim in the resource's namespace.",
            "required": ["claimName"],
            "properties": {
                "claimName": _str("Name of the PersistentVolumeClaim.", 253),
                "readOnly": _bool("Mount the claim read-only."),
            },
        },
        "hostPath": {
            "type": "object",
            "description": "A directory or file on the node (kind, single-node clusters).",
            "required": ["path"],
            "properties": {
                "path": _str("Absolute path on the node.", 1024),
                "type": {
                    "type": "string",
                    "enum": [
                        "",
                        "DirectoryOrCreate",
                        "Directory",
                        "FileOrCreate",
                        "File",
                        "Socket",
                        "CharDevice",
                        "BlockDevice",
                    ],
                    "description": "What must exist at path (core/v1 HostPathType).",
                },
            },
        },
        "emptyDir": {
            "type": "object",
            "description": "A scratch directory that lives as long as the pod.",
            "properties": {
                "medium": {
                    "type": "string",
                    "enum": ["", "Memory"],
                    "description": "Storage medium: the node's disk (empty) or Memory.",
                },
                "sizeLimit": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "description": "Size limit, e.g. 10Gi.",
                },
            },
        },
        "csi": {
            "type": "object",
            "description": "An inline CSI volume, e.g. driver gcsfuse.csi.storage.gke.io (GCS FUSE).",
            "required": ["driver"],
            "properties": {
                "driver": _str("CSI driver name.", 253),
                "readOnly": _bool("Mount the volume read-only."),
                "fsType": _str("Filesystem type, when the driver needs one.", 63),
                "volumeAttributes": {
                    "type": "object",
                    "description": "Driver-specific attributes, e.g. bucketName for GCS FUSE.",
                    "additionalProperties": {"type": "string"},
                },
                "nodePublishSecretRef": {
                    "type": "object",
                    "description": "Secret passed to the driver on mount.",
                    "properties": {"name": _str("Name of the Secret.", 253)},
                },
            },
        },
    }
    free = {
        name: {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": f"A core/v1 {name} volume source, passed through as written.",
        }
        for name in podspec.FREE_SOURCES
    }
    return {**typed, **free}


def volumes_schema() -> Schema:
    one_source = "[" + ", ".join(f"has(self.{s})" for s in podspec.VOLUME_SOURCES) + "]"
    return {
        "type": "array",
        "maxItems": MAX_VOLUMES,
        "description": (
            "Volumes of the job pods (core/v1 Volume), mounted with volumeMounts: a "
            "PersistentVolumeClaim, hostPath or GCS FUSE CSI volume for a filesystem "
            "output.uri or a local model.source. Names are unique DNS labels."
        ),
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name"],
            "x-kubernetes-validations": [
                {
                    "rule": f"{one_source}.exists_one(x, x)",
                    "message": "set exactly one volume source: "
                    + ", ".join(podspec.VOLUME_SOURCES),
                },
                {
                    "rule": f"!(self.name in {_cel_string_list(podspec.RESERVED_VOLUMES)})",
                    "message": "volume names "
                    + ", ".join(podspec.RESERVED_VOLUMES)
                    + " are reserved for the job config and the pod's writable directories",
                    "fieldPath": ".name",
                },
            ],
            "properties": {
                "name": _str(
                    "Volume name (a DNS label), referenced by volumeMounts[].name.",
                    63,
                    pattern=DNS_LABEL,
                ),
                **_volume_sources(),
            },
        },
    }


def volume_mounts_schema() -> Schema:
    return {
        "type": "array",
        "maxItems": MAX_VOLUMES,
        "description": (
            "Mounts of spec.volumes into the job container (core/v1 VolumeMount). A "
            f"filesystem output.uri should lie under one; {c.CONFIG_DIR} is the job config's."
        ),
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["mountPath"],
        "items": {
            "type": "object",
            "required": ["name", "mountPath"],
            "x-kubernetes-validations": [
                {
                    "rule": "self.mountPath.startsWith('/')",
                    "message": "mountPath must be an absolute path",
                    "fieldPath": ".mountPath",
                },
                {
                    "rule": f"self.mountPath != '{c.CONFIG_DIR}' && "
                    f"!self.mountPath.startsWith('{c.CONFIG_DIR}/')",
                    "message": f"{c.CONFIG_DIR} is where the job config is mounted; mount elsewhere",
                    "fieldPath": ".mountPath",
                },
                {
                    "rule": f"!(self.mountPath in {_cel_string_list((c.HOME_DIR, c.TMP_DIR))})",
                    "message": f"{c.HOME_DIR} (HOME) and {c.TMP_DIR} (TMPDIR) are the pod's "
                    "own writable directories; mount elsewhere (below them is fine)",
                    "fieldPath": ".mountPath",
                },
                {
                    "rule": "!has(self.subPath) || (!self.subPath.startsWith('/') && "
                    "!self.subPath.matches('(^|/)[.][.](/|$)'))",
                    "message": "subPath must be a relative path without '..'",
                    "fieldPath": ".subPath",
                },
            ],
            "properties": {
                "name": _str("Name of an entry of spec.volumes.", 63),
                "mountPath": _str("Absolute path in the container.", 1024),
                "readOnly": _bool("Mount read-only (the output's mount must not be)."),
                "subPath": _str("Path within the volume to mount instead of its root.", 1024),
            },
        },
    }


def _mounts_rule() -> Schema:
    undeclared = (
        "self.volumeMounts.filter(m, !has(self.volumes) || "
        "!self.volumes.exists(v, v.name == m.name))"
    )
    return {
        "rule": f"!has(self.volumeMounts) || size({undeclared}) == 0",
        "message": (
            "every volumeMounts[].name must name an entry of spec.volumes; "
            "add the volume or fix the mount's name"
        ),
        "fieldPath": ".volumeMounts",
    }


def pod_options_schema() -> Schema:
    """env, nodeSelector and tolerations of the job pods."""
    reserved = _cel_string_list(podspec.RESERVED_ENV)
    denied = _cel_string_list(policy.ALWAYS_DENIED_ENV)
    denied_prefixes = policy.ALWAYS_DENIED_ENV_PREFIXES
    return {
        "env": {
            "type": "array",
            "maxItems": 64,
            "description": "Extra environment variables of the job container.",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {
                "type": "object",
                "required": ["name"],
                "x-kubernetes-validations": [
                    {
                        "rule": f"!(self.name in {reserved})",
                        "message": "this variable is set by the operator (see docs/operator.md)",
                        "fieldPath": ".name",
                    },
                    {
                        "rule": f"!(self.name in {denied}) && "
                        + " && ".join(f"!self.name.startsWith('{p}')" for p in denied_prefixes),
                        "message": "this variable changes which code the image runs and may "
                        "not be set on arcx jobs (see docs/operator.md, admin policy)",
                        "fieldPath": ".name",
                    },
                ],
                "properties": {
                    "name": _str("Variable name.", 253, pattern="^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
                    "value": _str("Variable value.", 32768),
                },
            },
        },
        "nodeSelector": {
            "type": "object",
            "maxProperties": 32,
            "description": "Node labels the job pods require; TPU topologies add their own.",
            "additionalProperties": {"type": "string", "maxLength": 63},
        },
        "tolerations": {
            "type": "array",
            "maxItems": MAX_TOLERATIONS,
            "description": "Tolerations of the job pods (core/v1 Toleration), after the TPU ones.",
            "items": {
                "type": "object",
                "properties": {
                    "key": _str("Taint key; empty with Exists matches every taint.", 316),
                    "operator": {
                        "type": "string",
                        "enum": ["Exists", "Equal"],
                        "description": "Exists, or Equal to value (the default).",
                    },
                    "value": _str("Taint value for Equal.", 63),
                    "effect": {
                        "type": "string",
                        "enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"],
                        "description": "Taint effect to match; empty matches all.",
                    },
                    "tolerationSeconds": {
                        "type": "integer",
                        "format": "int64",
                        "description": "For NoExecute: how long the pod stays after the taint.",
                    },
                },
            },
        },
    }


def _mesh_rule() -> Schema:
    chips = {t: tpu.chips_in(t) for g in tpu.GENERATIONS for t in g.single_host + g.multi_host}
    table = "{" + ", ".join(f"'{t}': {n}" for t, n in sorted(chips.items())) + "}"
    return {
        "rule": (
            "!has(self.topology.tpu) || !(self.topology.tpu.topology in "
            f"{table}) || {table}[self.topology.tpu.topology] % self.mesh.model == 0"
        ),
        "message": "mesh.model must divide the number of TPU chips in one slice",
        "fieldPath": ".mesh.model",
    }


def spec_schema(job_config_schema: Schema) -> Schema:
    props: Schema = {
        "image": {
            "type": "string",
            "maxLength": 512,
            "description": "Job image running `arcx run`; defaults to the operator's --default-job-image.",
        },
        "imagePullPolicy": {
            "type": "string",
            "enum": ["Always", "IfNotPresent", "Never"],
            "default": spec.DEFAULT_PULL_POLICY,
            "description": "Pull policy of the job container.",
        },
        "serviceAccountName": {
            "type": "string",
            "maxLength": 253,
            "description": "Service account of the job pods (e.g. bound to a GCS-reading identity); "
            "the cluster's arcx policy lists the allowed ones.",
        },
        "automountServiceAccountToken": {
            "type": "boolean",
            "default": False,
            "description": "Mount the service account's API token into the pods. Off: arcx "
            "does not call the Kubernetes API, and GKE Workload Identity needs no token file.",
        },
        **shared_sections(job_config_schema),
        "topology": topology_schema(),
        "maxRestarts": {
            "type": "integer",
            "minimum": 0,
            "maximum": 1000,
            "default": spec.DEFAULT_MAX_RESTARTS,
            "description": "Restarts after crashes before the job fails; preemptions do not count.",
        },
        "suspend": {
            "type": "boolean",
            "default": False,
            "description": "Suspend (true) or resume (false) the job's pods.",
        },
        "queueName": {
            "type": "string",
            "maxLength": 63,
            "description": "Kueue LocalQueue; the JobSet is created suspended and Kueue admits it.",
        },
        "ttlSecondsAfterFinished": {
            "type": "integer",
            "minimum": 0,
            "description": "Delete the JobSet (and its pods) this long after it finishes.",
        },
        "volumes": volumes_schema(),
        "volumeMounts": volume_mounts_schema(),
        **pod_options_schema(),
    }
    for name in IMMUTABLE:
        props[name].setdefault("x-kubernetes-validations", []).append(
            {
                "rule": "self == oldSelf",
                "message": f"{name} is immutable once set; create a new ArcExtractionJob instead",
            }
        )
    optional_rules = [
        {
            "rule": f"has(self.{name}) == has(oldSelf.{name}) && "
            f"(!has(self.{name}) || self.{name} == oldSelf.{name})",
            "message": f"{name} is immutable once the resource exists; create a new ArcExtractionJob instead",
            "fieldPath": f".{name}",
        }
        for name in IMMUTABLE_OPTIONAL
    ]
    return {
        "type": "object",
        "description": "What to extract, from which model and tasks, where to write it and on what hardware.",
        "required": ["model", "dataset", "extraction", "output", "topology"],
        "x-kubernetes-validations": [_mesh_rule(), _mounts_rule(), *optional_rules],
        "properties": props,
    }


def plan_status_schema() -> Schema:
    """The runner's plan summary (arcx_store.plan), copied from the store's plan.json."""
    count = {"type": "integer", "format": "int64", "minimum": 0}
    number = {"type": "number", "minimum": 0}
    props: Schema = {name: dict(count) for name in COUNT_FIELDS}
    props.update({name: dict(number) for name in (*NUMBER_FIELDS, "relativeError95")})
    props["summary"] = {"type": "string"}
    return {
        "type": "object",
        "description": "What the job reads, keeps, writes and costs, estimated by the runner "
        "from the first unit it built when the job started (the numbers `arcx plan` prints; "
        "tasksSampled < tasks means scaled up, relativeError95 states the error).",
        "properties": props,
    }


def status_schema() -> Schema:
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        },
    }
    count = {"type": "integer", "format": "int64", "minimum": 0}
    return {
        "type": "object",
        "description": "Observed state, written by the operator.",
        "properties": {
            "phase": {
                "type": "string",
                "enum": [p.value for p in Phase],
            },
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "jobSetName": {"type": "string"},
            "restarts": {"type": "integer", "minimum": 0},
            "progress": {
                "type": "object",
                "properties": {
                    "unitsTotal": count,
                    "unitsCommitted": count,
                    "tasksDone": count,
                    "tokens": count,
                    "summary": {"type": "string"},
                },
            },
            "plan": plan_status_schema(),
            "startTime": {"type": "string", "format": "date-time"},
            "completionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        },
    }


def build_crd(job_config_schema: Schema) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": c.CRD_NAME},
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": list(c.SHORT_NAMES),
                "categories": list(c.CATEGORIES),
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Progress",
                            "type": "string",
                            "jsonPath": ".status.progress.summary",
                        },
                        {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A batch run of a language model over ARC tasks that records activations.",
                            "required": ["spec"],
                            "x-kubernetes-validations": [
                                {
                                    "rule": f"size(self.metadata.name) <= {c.MAX_NAME_LENGTH}",
                                    "message": f"metadata.name must be at most {c.MAX_NAME_LENGTH} characters (pod hostnames derive from it)",
                                }
                            ],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(job_config_schema),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }
