"""Invalid ArcExtractionJobs are rejected by a real kube-apiserver, each with a message that
names the field; every sample is accepted; output-changing fields are immutable.

Uses the session ``cluster`` fixture (tests/conftest.py: the local control plane built by
hack/tools/build.sh, or ARCX_E2E_KUBECONFIG). The CRD is applied from manifests/crd/, so
this checks the committed schema and its CEL rules as the API server compiles them.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from op_helpers import CONFIG_RULE_MIRRORS, CRD_PATH, load_sample, sample_paths, with_values

pytestmark = [pytest.mark.cluster]

Body = dict[str, Any]
Mutation = Callable[[Body], None]


def cpu() -> Body:
    return load_sample("cpu-2x2.yaml")


def tpu() -> Body:
    return load_sample("tpu-v5e-16.yaml")


def _set(path: str, value: Any) -> Mutation:
    def apply(body: Body) -> None:
        node = body
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value

    return apply


def _del(path: str) -> Mutation:
    def apply(body: Body) -> None:
        node = body
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return apply


# (id, base, mutation, field the message must name, a fragment of the message)
INVALID: list[tuple[str, Callable[[], Body], Mutation, str, str]] = [
    ("both-topologies", tpu, _set("spec.topology.cpu", {"hosts": 1}), "spec.topology", "exactly one of topology.tpu or topology.cpu"),
    ("no-topology-kind", cpu, _set("spec.topology", {}), "spec.topology", "exactly one of topology.tpu or topology.cpu"),
    ("topology-not-offered", tpu, _set("spec.topology.tpu.topology", "2x2x2"), "spec.topology.tpu.topology", "not offered for this accelerator"),
    ("unknown-accelerator", tpu, _set("spec.topology.tpu.accelerator", "tpu-v9"), "spec.topology.tpu.accelerator", "Unsupported value"),
    ("tpu-zero-slices", tpu, _set("spec.topology.tpu.slices", 0), "spec.topology.tpu.slices", "greater than or equal to 1"),
    ("cpu-zero-hosts", cpu, _set("spec.topology.cpu.hosts", 0), "spec.topology.cpu.hosts", "greater than or equal to 1"),
    ("cpu-too-many-hosts", cpu, _set("spec.topology.cpu.hosts", 65), "spec.topology.cpu.hosts", "less than or equal to 64"),
    ("no-model", cpu, _del("spec.model"), "spec.model", "Required value"),
    ("no-model-source", cpu, _del("spec.model.source"), "spec.model.source", "Required value"),
    ("model-dtype", cpu, _set("spec.model.dtype", "float16"), "spec.model.dtype", "Unsupported value"),
    ("no-layers", cpu, _set("spec.extraction.layers", []), "spec.extraction.layers", "at least 1 items"),
    ("negative-layer", cpu, _set("spec.extraction.layers", [-1, 2]), "spec.extraction.layers[0]", "greater than or equal to 0"),
    ("repeated-layer", cpu, _set("spec.extraction.layers", [3, 3]), "spec.extraction.layers[1]", "Duplicate value"),
    ("unknown-site", cpu, _set("spec.extraction.sites", ["resid_post", "attn_pattern"]), "spec.extraction.sites[1]", "Unsupported value"),
    ("repeated-site", cpu, _set("spec.extraction.sites", ["mlp_out", "mlp_out"]), "spec.extraction.sites[1]", "Duplicate value"),
    ("positions", cpu, _set("spec.extraction.positions", "middle"), "spec.extraction.positions", "Unsupported value"),
    ("too-many-new-tokens", cpu, _set("spec.generation.maxNewTokens", 9000), "spec.generation.maxNewTokens", "less than or equal to 8192"),
    ("batch-smaller-than-sequence", cpu, _set("spec.batching", {"tokensPerBatch": 1024, "maxSeqLen": 2048}), "spec.batching.tokensPerBatch", "tokensPerBatch must be >= maxSeqLen"),
    ("tiny-max-seq-len", cpu, _set("spec.batching.maxSeqLen", 8), "spec.batching.maxSeqLen", "greater than or equal to 16"),
    ("zero-unit-size", cpu, _set("spec.output.unitSize", 0), "spec.output.unitSize", "greater than or equal to 1"),
    ("no-output-uri", cpu, _del("spec.output.uri"), "spec.output.uri", "Required value"),
    ("zero-max-tasks", cpu, _set("spec.dataset.maxTasks", 0), "spec.dataset.maxTasks", "greater than or equal to 1"),
    ("zero-mesh", cpu, _set("spec.mesh", {"model": 0}), "spec.mesh.model", "greater than or equal to 1"),
    ("mesh-does-not-divide-chips", tpu, _set("spec.mesh.model", 3), "spec.mesh.model", "must divide the number of TPU chips"),
    ("negative-max-restarts", cpu, _set("spec.maxRestarts", -1), "spec.maxRestarts", "greater than or equal to 0"),
    ("pull-policy", cpu, _set("spec.imagePullPolicy", "Sometimes"), "spec.imagePullPolicy", "Unsupported value"),
    ("negative-ttl", cpu, _set("spec.ttlSecondsAfterFinished", -5), "spec.ttlSecondsAfterFinished", "greater than or equal to 0"),
    ("template", cpu, _set("spec.prompt", {"template": "chat"}), "spec.prompt.template", "Unsupported value"),
    ("dihedral", cpu, _set("spec.prompt", {"augmentation": {"dihedral": "flip"}}), "spec.prompt.augmentation.dihedral", "Unsupported value"),
    ("unknown-field", cpu, _set("spec.model.revision", "main"), "spec.model.revision", "unknown field"),
    ("name-too-long", cpu, _set("metadata.name", "n" * 41), "metadata.name", "at most 40 characters"),
    ("no-spec", cpu, _del("spec"), "spec", "Required value"),
    ("mount-undeclared-volume", cpu, _set("spec.volumeMounts", [{"name": "scratch", "mountPath": "/scratch"}]), "spec.volumeMounts", "must name an entry of spec.volumes"),
    ("mount-without-volumes", cpu, _del("spec.volumes"), "spec.volumeMounts", "must name an entry of spec.volumes"),
    ("duplicate-volume-names", cpu, _set("spec.volumes", [{"name": "data", "emptyDir": {}}, {"name": "data", "hostPath": {"path": "/x"}}]), "spec.volumes[1]", "Duplicate value"),
    ("volume-name-not-dns-label", cpu, _set("spec.volumes", [{"name": "Data_1", "emptyDir": {}}]), "spec.volumes[0].name", "should match"),
    ("volume-name-reserved", cpu, _set("spec.volumes", [{"name": "job-config", "emptyDir": {}}]), "spec.volumes[0].name", "reserved for the job config"),
    ("volume-without-source", cpu, _set("spec.volumes", [{"name": "data"}]), "spec.volumes[0]", "set exactly one volume source"),
    ("volume-two-sources", cpu, _set("spec.volumes", [{"name": "data", "emptyDir": {}, "hostPath": {"path": "/data"}}]), "spec.volumes[0]", "set exactly one volume source"),
    ("pvc-without-claim", cpu, _set("spec.volumes", [{"name": "data", "persistentVolumeClaim": {}}]), "spec.volumes[0].persistentVolumeClaim.claimName", "Required value"),
    ("mount-at-config-dir", cpu, _set("spec.volumeMounts", [{"name": "data", "mountPath": "/etc/arcx"}]), "spec.volumeMounts[0].mountPath", "/etc/arcx is where the job config is mounted"),
    ("mount-under-config-dir", cpu, _set("spec.volumeMounts", [{"name": "data", "mountPath": "/etc/arcx/job.yaml"}]), "spec.volumeMounts[0].mountPath", "/etc/arcx is where the job config is mounted"),
    ("relative-mount-path", cpu, _set("spec.volumeMounts", [{"name": "data", "mountPath": "data"}]), "spec.volumeMounts[0].mountPath", "mountPath must be an absolute path"),
    ("duplicate-mount-path", cpu, _set("spec.volumeMounts", [{"name": "data", "mountPath": "/data"}, {"name": "data", "mountPath": "/data", "readOnly": True}]), "spec.volumeMounts[1]", "Duplicate value"),
    ("sub-path-escapes", cpu, _set("spec.volumeMounts", [{"name": "data", "mountPath": "/data", "subPath": "a/../../b"}]), "spec.volumeMounts[0].subPath", "relative path without '..'"),
    ("reserved-env", cpu, _set("spec.env", [{"name": "JAX_PROCESS_ID", "value": "0"}]), "spec.env[0].name", "set by the operator"),
    ("toleration-operator", cpu, _set("spec.tolerations", [{"key": "k", "operator": "Maybe"}]), "spec.tolerations[0].operator", "Unsupported value"),
    ("reserved-env-home", cpu, _set("spec.env", [{"name": "HOME", "value": "/"}]), "spec.env[0].name", "set by the operator"),
    ("env-ld-preload", cpu, _set("spec.env", [{"name": "LD_PRELOAD", "value": "/x.so"}]), "spec.env[0].name", "changes which code the image runs"),
    ("env-ld-audit", cpu, _set("spec.env", [{"name": "XLA_FLAGS", "value": ""}, {"name": "LD_AUDIT", "value": "/x.so"}]), "spec.env[1].name", "changes which code the image runs"),
    ("env-pythonpath", cpu, _set("spec.env", [{"name": "PYTHONPATH", "value": "/x"}]), "spec.env[0].name", "changes which code the image runs"),
    ("volume-name-arcx-home", cpu, _set("spec.volumes", [{"name": "arcx-home", "emptyDir": {}}]), "spec.volumes[0].name", "reserved"),
    ("mount-at-home", cpu, _set("spec.volumeMounts", [{"name": "data", "mountPath": "/home/arcx"}]), "spec.volumeMounts[0].mountPath", "own writable directories"),
    ("mount-at-tmpdir", cpu, _set("spec.volumeMounts", [{"name": "data", "mountPath": "/var/tmp"}]), "spec.volumeMounts[0].mountPath", "own writable directories"),
]  # fmt: skip


def _spec_values(values: dict[str, Any]) -> Mutation:
    def apply(body: Body) -> None:
        body["spec"] = with_values(body["spec"], values)

    return apply


INVALID += [
    (f"config-{case}", cpu, _spec_values(values), field, fragment)
    for case, values, field, fragment in CONFIG_RULE_MIRRORS
]


def test_there_are_at_least_twenty_invalid_cases() -> None:
    assert len({case[0] for case in INVALID}) == len(INVALID) >= 20


@pytest.fixture(scope="module")
def api(cluster: Any) -> Iterator[tuple[Any, str]]:
    """The cluster with the committed CRD applied, and a fresh namespace."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_PATH.stem}")
    ns = f"crd-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    yield cluster, ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _create(api: tuple[Any, str], body: Body, dry_run: bool = True) -> Any:
    cluster, ns = api
    args = ["create", "--validate=strict", "-n", ns, "-o", "json", "-f", "-"]
    if dry_run:
        args.insert(1, "--dry-run=server")
    return cluster.kubectl(*args, check=False, input_text=yaml.safe_dump(body))


@pytest.mark.parametrize("path", sample_paths(), ids=lambda p: p.name)
def test_every_sample_is_accepted(api: tuple[Any, str], path: Any) -> None:
    proc = _create(api, yaml.safe_load(path.read_text()))
    assert proc.returncode == 0, proc.stderr


def test_the_api_server_applies_the_schema_defaults(api: tuple[Any, str]) -> None:
    body = load_sample("kueue-queued.yaml")
    proc = _create(api, body)
    assert proc.returncode == 0, proc.stderr
    spec = json.loads(proc.stdout)["spec"]
    assert spec["maxRestarts"] == 3 and spec["suspend"] is False
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["topology"]["tpu"]["slices"] == 1 and spec["topology"]["tpu"]["spot"] is False
    assert spec["prompt"]["encoder"] == "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))"
    assert spec["extraction"]["sites"] == ["resid_post"]
    assert spec["batching"] == {"tokensPerBatch": 8192, "maxSeqLen": 2048}
    assert spec["output"]["unitSize"] == 16


@pytest.mark.parametrize(
    ("case", "base", "mutate", "field", "fragment"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_resource_is_rejected_naming_the_field(
    api: tuple[Any, str],
    case: str,
    base: Callable[[], Body],
    mutate: Mutation,
    field: str,
    fragment: str,
) -> None:
    body = base()
    body["metadata"]["name"] = f"bad-{case}"[:40]
    mutate(body)
    proc = _create(api, body)
    assert proc.returncode != 0, f"{case} was accepted:\n{proc.stdout[:2000]}"
    assert field in proc.stderr, f"the message does not name {field}:\n{proc.stderr}"
    assert fragment in proc.stderr, f"the message does not say {fragment!r}:\n{proc.stderr}"


def test_every_volume_option_is_accepted(api: tuple[Any, str]) -> None:
    body = cpu()
    body["metadata"]["name"] = "all-volume-options"
    body["spec"]["volumes"] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "arcx-data", "readOnly": False}},
        {"name": "node", "hostPath": {"path": "/srv/models", "type": "Directory"}},
        {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {
            "name": "bucket",
            "csi": {
                "driver": "gcsfuse.csi.storage.gke.io",
                "readOnly": True,
                "volumeAttributes": {"bucketName": "arcx-models", "mountOptions": "implicit-dirs"},
            },
        },
        {"name": "shared", "nfs": {"server": "10.0.0.2", "path": "/exports"}},
    ]
    body["spec"]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"},
        {"name": "node", "mountPath": "/models", "readOnly": True, "subPath": "qwen"},
        {"name": "scratch", "mountPath": "/tmp/scratch"},
        {"name": "bucket", "mountPath": "/gcs", "readOnly": True},
        {"name": "shared", "mountPath": "/etc/arcx-extra"},
    ]
    body["spec"]["env"] = [{"name": "HF_HOME", "value": "/tmp/scratch/hf"}]
    body["spec"]["nodeSelector"] = {"kubernetes.io/arch": "amd64"}
    body["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    proc = _create(api, body)
    assert proc.returncode == 0, proc.stderr
    spec = json.loads(proc.stdout)["spec"]
    assert spec["volumes"] == body["spec"]["volumes"]
    assert spec["volumeMounts"] == body["spec"]["volumeMounts"]


@pytest.fixture(scope="module")
def stored(api: tuple[Any, str]) -> Body:
    """A resource really created (no operator acts in this namespace's test)."""
    body = cpu()
    body["metadata"]["name"] = "immutable"
    body["spec"]["suspend"] = True
    proc = _create(api, body, dry_run=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _replace(api: tuple[Any, str], stored: Body, mutate: Mutation) -> Any:
    cluster, ns = api
    body = copy.deepcopy(stored)
    mutate(body)
    return cluster.kubectl(
        "replace", "--dry-run=server", "-n", ns, "-f", "-", check=False, input_text=json.dumps(body)
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.model.source", "hf://Qwen/Qwen2.5-1.5B-Instruct"),
        ("spec.dataset.maxTasks", 17),
        ("spec.extraction.layers", [4]),
        ("spec.output.uri", "/data/elsewhere"),
        ("spec.batching.maxSeqLen", 2048),
        ("spec.topology.cpu.hosts", 4),
        ("spec.queueName", "other"),
    ],
)
def test_output_changing_fields_are_immutable(
    api: tuple[Any, str], stored: Body, path: str, value: Any
) -> None:
    proc = _replace(api, stored, _set(path, value))
    assert proc.returncode != 0, f"changing {path} was accepted"
    section = ".".join(path.split(".")[:2])
    assert section in proc.stderr and "immutable" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("path", "value"),
    [("spec.suspend", False), ("spec.maxRestarts", 7), ("spec.image", "arcx-job:v2")],
)
def test_operational_fields_stay_mutable(
    api: tuple[Any, str], stored: Body, path: str, value: Any
) -> None:
    proc = _replace(api, stored, _set(path, value))
    assert proc.returncode == 0, proc.stderr
