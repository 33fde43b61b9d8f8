"""The Helm chart with the real helm binary (built by hack/tools/build.sh): lint, template,
values schema, least-privilege RBAC, and agreement with the plain manifests in manifests/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from op_helpers import CHART_DIR, CRD_PATH, REPO

from arcx_operator.main import build_parser, policy_from_args
from arcx_operator.policy import DEFAULT_VOLUME_TYPES, Policy

MANIFESTS = REPO / "manifests"


VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "hack/tools/versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)
# helm built with `go install` reports Kubernetes v1.20 to templates; name the pinned one.
KUBE_VERSION = f"--kube-version={VERSIONS['KUBE_VERSION']}"


def _helm_path() -> Path:
    if os.environ.get("ARCX_HELM"):
        return Path(os.environ["ARCX_HELM"])
    versions = VERSIONS
    cache = Path(os.environ.get("ARCX_TOOLS_CACHE", Path.home() / ".cache/arcx-tools"))
    return cache / f"helm-{versions['HELM_VERSION']}" / "bin" / "helm"


@pytest.fixture(scope="module")
def helm() -> Path:
    path = _helm_path()
    if not path.exists():
        msg = f"helm is not built at {path}; run hack/tools/build.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/arcx-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/arcx-helm/config",
    }
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, env=env)


def _template(helm: Path, *args: str) -> list[dict[str, Any]]:
    proc = _run(
        helm, "template", "arcx", str(CHART_DIR), "--namespace", "arcx-system", KUBE_VERSION, *args
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _manifests(*parts: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS.joinpath(*parts)).read_text()) if d]


def test_lint_is_clean(helm: Path) -> None:
    proc = _run(helm, "lint", "--strict", str(CHART_DIR))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_crd_ships_with_the_chart(helm: Path) -> None:
    objs = _template(helm, "--include-crds")
    crd = _one(objs, "CustomResourceDefinition")
    assert crd == yaml.safe_load(CRD_PATH.read_text())


def test_deployment_is_locked_down(helm: Path) -> None:
    dep = _one(_template(helm), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--default-job-image=ghcr.io/arcx-dev/arcx-job:0.1.0-cpu" in c["args"]
    assert "--leader-election" in c["args"] and dep["spec"]["replicas"] == 2
    assert c["image"] == "ghcr.io/arcx-dev/arcx-operator:0.1.0"
    assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "arcx"


def _rules(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for o in objs if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]]


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, res, v)
        for r in rules
        for g in r["apiGroups"]
        for res in r["resources"]
        for v in r["verbs"]
    }


@pytest.mark.parametrize("source", ["chart", "manifests"])
def test_rbac_is_least_privilege(helm: Path, source: str) -> None:
    objs = _template(helm) if source == "chart" else _manifests("rbac", "rbac.yaml")
    grants = _grants(_rules(objs))
    resources = {res for _, res, _ in grants}
    assert "secrets" not in resources and "pods/exec" not in resources
    assert not any("*" in (g, res, v) for g, res, v in grants)
    # list only (a JobSet's failed pod, by label; RBAC cannot narrow a list to a label).
    assert {v for _, res, v in grants if res == "pods"} == {"list"}
    assert ("coordination.k8s.io", "leases", "update") in grants
    assert ("arcx.dev", "arcextractionjobs/status", "patch") in grants
    assert ("jobset.x-k8s.io", "jobsets", "create") in grants
    assert ("", "configmaps", "create") in grants
    assert ("", "events", "create") in grants
    assert not any(v == "delete" for _, _, v in grants), (
        "the operator never deletes: ownerReferences do"
    )


def test_chart_and_manifests_grant_the_same(helm: Path) -> None:
    assert _grants(_rules(_template(helm))) == _grants(_rules(_manifests("rbac", "rbac.yaml")))


def test_chart_and_manifests_run_the_same_pod(helm: Path) -> None:
    chart = _one(_template(helm), "Deployment")["spec"]["template"]["spec"]
    plain = _one(_manifests("deployment", "deployment.yaml"), "Deployment")["spec"]["template"][
        "spec"
    ]
    for key in ("securityContext", "volumes"):
        assert chart[key] == plain[key], key
    cc, pc = chart["containers"][0], plain["containers"][0]
    for key in (
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "env",
        "ports",
        "volumeMounts",
    ):
        assert cc[key] == pc[key], key
    assert set(pc["args"]) <= set(cc["args"])


def test_watch_namespaces_use_roles(helm: Path) -> None:
    objs = _template(helm, "--set", "watchNamespaces={team-a,team-b}")
    roles = [
        o
        for o in objs
        if o["kind"] == "Role" and o["metadata"]["namespace"] in ("team-a", "team-b")
    ]
    assert len(roles) == 2
    cluster_grants = _grants(_one(objs, "ClusterRole")["rules"])
    assert not any(res == "jobsets" for _, res, _ in cluster_grants)
    args = _one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_leader_election_off(helm: Path) -> None:
    objs = _template(helm, "--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
    args = _one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-leader-election" in args
    assert not any(o["kind"] == "Role" for o in objs)


def test_extra_volumes_reach_the_operator_pod(helm: Path) -> None:
    """A filesystem output.uri is readable by the operator when its volume is mounted."""
    objs = _template(
        helm,
        "--set-json",
        'extraVolumes=[{"name":"runs","hostPath":{"path":"/data"}}]',
        "--set-json",
        'extraVolumeMounts=[{"name":"runs","mountPath":"/data","readOnly":true}]',
    )
    pod = _one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"][-1] == {"name": "runs", "hostPath": {"path": "/data"}}
    mounts = pod["containers"][0]["volumeMounts"]
    assert mounts[0]["name"] == "tmp"
    assert mounts[-1] == {"name": "runs", "mountPath": "/data", "readOnly": True}


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("replicaCount=0", "replicaCount"),
        ("logFormat=xml", "logFormat"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("httpPort=80", "httpPort"),
        ("nosuchvalue=1", "nosuchvalue"),
        ("extraVolumeMounts[0].name=x", "mountPath"),
        ("policy.allowedVolumeTypes={hostpath}", "allowedVolumeTypes"),
        ("policy.nosuchrule=1", "nosuchrule"),
    ],
)
def test_values_schema_rejects_bad_values(helm: Path, setting: str, field: str) -> None:
    proc = _run(helm, "template", "arcx", str(CHART_DIR), KUBE_VERSION, "--set", setting)
    assert proc.returncode != 0, f"--set {setting} was accepted"
    assert field in proc.stderr, proc.stderr


def _policy_of(objs: list[dict[str, Any]]) -> Policy:
    args = _one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    return policy_from_args(build_parser().parse_args(args))


def test_the_default_policy_is_locked_down(helm: Path) -> None:
    """The chart's default args, parsed by the operator's own parser."""
    policy = _policy_of(_template(helm))
    assert policy.image_repositories == ("ghcr.io/arcx-dev/arcx-job",)
    assert policy.service_accounts == ()
    assert policy.volume_types == DEFAULT_VOLUME_TYPES
    assert not {"hostPath", "secret", "projected", "nfs"} & set(policy.volume_types)
    plain = _policy_of(_manifests("deployment", "deployment.yaml"))
    assert plain == policy


def test_policy_values_reach_the_operator(helm: Path) -> None:
    objs = _template(
        helm,
        "--set-json",
        'policy={"allowedImageRepositories":["registry.local/team/"],'
        '"allowedServiceAccounts":["gcs-reader"],'
        '"allowedVolumeTypes":["persistentVolumeClaim","hostPath"],"deniedEnv":["HF_TOKEN"]}',
        "--set",
        "jobImage.repository=registry.local/arcx-job",
    )
    assert _policy_of(objs) == Policy(
        image_repositories=("registry.local/team/", "registry.local/arcx-job"),
        service_accounts=("gcs-reader",),
        volume_types=("persistentVolumeClaim", "hostPath"),
        denied_env=("HF_TOKEN",),
    )
    anything = _template(helm, "--set-json", 'policy={"allowedImageRepositories":["*"]}')
    assert _policy_of(anything).image_repositories is None


def test_plain_manifests_parse_and_are_namespaced() -> None:
    for path in [
        *sorted((MANIFESTS / "deployment").glob("*.yaml")),
        MANIFESTS / "rbac" / "rbac.yaml",
    ]:
        for obj in yaml.safe_load_all(path.read_text()):
            if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                assert obj["metadata"]["namespace"] == "arcx-system", path


def test_the_admission_policy_is_opt_in_and_mirrors_the_values(helm: Path) -> None:
    """Off by default (the operator enforces the policy either way); when on, one CEL rule
    per forbidden volume type, and none for an allowed one."""
    assert not any(o["kind"].startswith("ValidatingAdmissionPolicy") for o in _template(helm))
    objs = _template(helm, "--set", "policy.admission.enabled=true")
    vap = _one(objs, "ValidatingAdmissionPolicy")
    _one(objs, "ValidatingAdmissionPolicyBinding")
    rules = " ".join(v["expression"] for v in vap["spec"]["validations"])
    for kind in ("hostPath", "secret", "projected", "nfs"):
        assert f"has(v.{kind})" in rules
    for kind in DEFAULT_VOLUME_TYPES:
        assert f"has(v.{kind})" not in rules
