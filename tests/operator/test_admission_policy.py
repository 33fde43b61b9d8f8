"""The chart's ValidatingAdmissionPolicy (values policy.admission.enabled): a real API server
refuses an ArcExtractionJob that breaks the admin policy, naming the field, and accepts one
that keeps it; the binding's namespaceSelector limits it to the namespaces it names.

The policy is applied from ``helm template`` output, bound to this module's namespace only
(other tests share the session's cluster), and deleted afterwards.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from op_helpers import CHART_DIR, CRD_PATH, REPO, load_sample

pytestmark = [pytest.mark.cluster]

Body = dict[str, Any]
VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "hack/tools/versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)
ALLOWED_IMAGE = "ghcr.io/arcx-dev/arcx-job:0.1.0-cpu"


def _ok_body(name: str) -> Body:
    body = load_sample("cpu-2x2.yaml")
    body["metadata"] = {"name": name}
    body["spec"]["image"] = ALLOWED_IMAGE
    body["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]
    return body


def _create(cluster: Any, ns: str, body: Body) -> Any:
    return cluster.kubectl(
        "create", "--dry-run=server", "-n", ns, "-o", "json", "-f", "-",
        check=False, input_text=yaml.safe_dump(body),
    )  # fmt: skip


@pytest.fixture(scope="module")
def guarded(cluster: Any) -> Iterator[tuple[Any, str, str]]:
    """(cluster, a namespace the policy binds, one it does not)."""
    tag = uuid.uuid4().hex[:8]
    inside, outside = f"vap-{tag}", f"novap-{tag}"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_PATH.stem}")
    for ns in (inside, outside):
        cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", inside, f"arcx-vap-test={tag}")
    rendered = cluster.helm(
        "template", f"t{tag}", str(CHART_DIR), "--namespace", "arcx-system",
        f"--kube-version={VERSIONS['KUBE_VERSION']}",
        "--show-only", "templates/admissionpolicy.yaml",
        "--set", "policy.admission.enabled=true",
        "--set-json", f'policy.admission.namespaceSelector={{"matchLabels":{{"arcx-vap-test":"{tag}"}}}}',
        "--set-json", 'policy.allowedServiceAccounts=["gcs-reader"]',
        "--set-json", 'policy.deniedEnv=["HF_TOKEN"]',
    ).stdout  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input_text=rendered)
    # The API server loads a new policy asynchronously: wait until it refuses.
    probe = _ok_body("probe")
    probe["spec"]["volumes"] = [{"name": "data", "hostPath": {"path": "/"}}]
    deadline = time.monotonic() + 60
    while _create(cluster, inside, probe).returncode == 0:
        assert time.monotonic() < deadline, "the ValidatingAdmissionPolicy never took effect"
        time.sleep(1)
    yield cluster, inside, outside
    cluster.kubectl("delete", "--wait=false", "-f", "-", input_text=rendered, check=False)
    for ns in (inside, outside):
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _set(body: Body, **spec: Any) -> Body:
    out = copy.deepcopy(body)
    out["spec"].update(spec)
    return out


CASES = [
    ("hostpath", {"volumes": [{"name": "data", "hostPath": {"path": "/"}}]}, "spec.volumes[0].hostPath: volume type hostPath is not allowed"),
    ("secret", {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "k", "secret": {"secretName": "gcp"}}]}, "spec.volumes[1].secret: volume type secret is not allowed"),
    ("projected", {"volumes": [{"name": "data", "projected": {"sources": []}}]}, "spec.volumes[0].projected"),
    ("image", {"image": "docker.io/evil/arcx:1"}, "spec.image: repository of docker.io/evil/arcx:1 is not allowed"),
    ("image-prefix-trick", {"image": "ghcr.io/arcx-dev/arcx-job-evil:1"}, "spec.image"),
    ("service-account", {"serviceAccountName": "cluster-admin-sa"}, "spec.serviceAccountName: cluster-admin-sa is not allowed"),
    ("denied-env", {"env": [{"name": "HF_TOKEN", "value": "x"}]}, "HF_TOKEN may not be set"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "spec", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_the_api_server_refuses_what_the_policy_forbids(
    guarded: tuple[Any, str, str], case: str, spec: dict[str, Any], fragment: str
) -> None:
    cluster, inside, _ = guarded
    proc = _create(cluster, inside, _set(_ok_body(f"bad-{case}"), **spec))
    assert proc.returncode != 0, f"{case} was admitted"
    assert "ValidatingAdmissionPolicy" in proc.stderr and fragment in proc.stderr, proc.stderr


def test_what_the_policy_allows_is_admitted(guarded: tuple[Any, str, str]) -> None:
    cluster, inside, _ = guarded
    body = _set(
        _ok_body("fine"),
        serviceAccountName="gcs-reader",
        env=[{"name": "XLA_FLAGS", "value": "--x"}],
        volumes=[
            {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
            {"name": "models", "csi": {"driver": "gcsfuse.csi.storage.gke.io"}},
        ],
    )
    proc = _create(cluster, inside, body)
    assert proc.returncode == 0, proc.stderr
    digest = _set(_ok_body("digest"), image="ghcr.io/arcx-dev/arcx-job@sha256:" + "a" * 64)
    assert _create(cluster, inside, digest).returncode == 0


def test_the_binding_is_limited_to_its_namespaces(guarded: tuple[Any, str, str]) -> None:
    cluster, _, outside = guarded
    body = _set(_ok_body("elsewhere"), volumes=[{"name": "data", "hostPath": {"path": "/"}}])
    proc = _create(cluster, outside, body)
    assert proc.returncode == 0, proc.stderr
