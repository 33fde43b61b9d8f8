"""The cluster admin's policy (policy.py): each rule refuses what it must, names the field,
and lets through what it allows; the flags that set it; the reconcile refusing before
anything is created."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from op_helpers import as_stored, load_sample

from arcx_operator import constants as c
from arcx_operator import policy as pol
from arcx_operator.main import build_parser, policy_from_args
from arcx_operator.spec import EnvVar, JobSpec, parse_resource, parse_spec

CHART_DEFAULT = pol.Policy(
    image_repositories=("ghcr.io/arcx-dev/arcx-job",),
    service_accounts=(),
    volume_types=pol.DEFAULT_VOLUME_TYPES,
)


def _spec(**fields: Any) -> JobSpec:
    base = parse_spec(load_sample("cpu-2x2.yaml")["spec"])
    return replace(base, **{"image": None, "volumes": (), "volume_mounts": (), **fields})


def _violations(spec: JobSpec, policy: pol.Policy = CHART_DEFAULT) -> list[str]:
    return pol.violations(policy, spec)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("ghcr.io/arcx-dev/arcx-job:0.1.0-cpu", True),
        ("ghcr.io/arcx-dev/arcx-job@sha256:" + "a" * 64, True),
        ("ghcr.io/arcx-dev/arcx-job:1@sha256:" + "a" * 64, True),
        ("ghcr.io/arcx-dev/arcx-job-evil:1", False),
        ("ghcr.io/arcx-dev/arcx-job/sub:1", False),
        ("docker.io/library/python:3.11", False),
        ("python", False),
    ],
)
def test_image_repositories(image: str, allowed: bool) -> None:
    found = _violations(_spec(image=image))
    assert (found == []) == allowed, found
    if not allowed:
        (msg,) = found
        assert msg.startswith("spec.image: repository ") and "ghcr.io/arcx-dev/arcx-job" in msg


def test_a_trailing_slash_allows_a_whole_registry_path_and_ports_are_not_tags() -> None:
    policy = replace(CHART_DEFAULT, image_repositories=("registry.local:5000/team/",))
    assert _violations(_spec(image="registry.local:5000/team/arcx:dev"), policy) == []
    assert _violations(_spec(image="registry.local:5000/other/arcx:dev"), policy)
    assert pol.image_repository("registry.local:5000/team/arcx") == "registry.local:5000/team/arcx"


def test_no_image_means_the_operators_default_image_which_is_not_checked() -> None:
    assert _violations(_spec(image=None)) == []


@pytest.mark.parametrize(("sa", "ok"), [(None, True), ("default", True), ("gcs-reader", False)])
def test_service_accounts_default_to_only_the_namespace_default(sa: str | None, ok: bool) -> None:
    found = _violations(_spec(service_account_name=sa))
    assert (found == []) == ok
    if not ok:
        assert found[0].startswith("spec.serviceAccountName: gcs-reader is not allowed")


def test_listed_service_accounts_are_allowed_and_none_means_any() -> None:
    listed = replace(CHART_DEFAULT, service_accounts=("gcs-reader",))
    assert _violations(_spec(service_account_name="gcs-reader"), listed) == []
    assert _violations(_spec(service_account_name="admin"), listed)
    anyone = replace(CHART_DEFAULT, service_accounts=None)
    assert _violations(_spec(service_account_name="admin"), anyone) == []


@pytest.mark.parametrize(
    ("volume", "ok"),
    [
        ({"name": "v", "hostPath": {"path": "/"}}, False),
        ({"name": "v", "secret": {"secretName": "gcp-key"}}, False),
        ({"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}, False),
        ({"name": "v", "nfs": {"server": "10.0.0.2", "path": "/"}}, False),
        ({"name": "v", "persistentVolumeClaim": {"claimName": "data"}}, True),
        ({"name": "v", "emptyDir": {}}, True),
        ({"name": "v", "csi": {"driver": "gcsfuse.csi.storage.gke.io"}}, True),
        ({"name": "v", "configMap": {"name": "cm"}}, True),
    ],
)
def test_volume_types_hostpath_and_secret_are_off_by_default(volume: dict, ok: bool) -> None:
    spec = _spec(volumes=({"name": "ok", "emptyDir": {}}, volume))
    found = _violations(spec)
    assert (found == []) == ok, found
    if not ok:
        kind = next(k for k in volume if k != "name")
        (msg,) = found
        assert msg.startswith(f"spec.volumes[1].{kind}: volume type {kind} is not allowed")


def test_an_admin_may_allow_hostpath() -> None:
    policy = replace(CHART_DEFAULT, volume_types=(*pol.DEFAULT_VOLUME_TYPES, "hostPath"))
    spec = _spec(volumes=({"name": "v", "hostPath": {"path": "/data"}},))
    assert _violations(spec, policy) == []


@pytest.mark.parametrize(
    "name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PATH", "TPU_LIBRARY_PATH"]
)
def test_env_that_loads_code_is_always_refused(name: str) -> None:
    anything = pol.Policy()  # even with no admin policy at all
    (msg,) = _violations(_spec(env=(EnvVar("XLA_FLAGS", "x"), EnvVar(name, "/x"))), anything)
    assert msg.startswith(f"spec.env[1].name: {name} may not be set")


def test_admin_denied_env_and_allowed_env() -> None:
    policy = replace(CHART_DEFAULT, denied_env=("HF_TOKEN",))
    assert _violations(_spec(env=(EnvVar("HF_TOKEN", "x"),)), policy)
    assert (
        _violations(_spec(env=(EnvVar("XLA_FLAGS", "--x"), EnvVar("HF_HOME", "/h"))), policy) == []
    )


def test_every_breach_is_named_at_once() -> None:
    spec = _spec(
        image="evil.io/x:1",
        service_account_name="admin",
        volumes=({"name": "root", "hostPath": {"path": "/"}},),
        env=(EnvVar("LD_PRELOAD", "/x.so"),),
    )
    with pytest.raises(pol.PolicyError) as err:
        pol.check(CHART_DEFAULT, spec)
    text = str(err.value)
    for field in (
        "spec.image",
        "spec.serviceAccountName",
        "spec.volumes[0].hostPath",
        "spec.env[0]",
    ):
        assert field in text
    assert err.value.reason == c.POLICY_VIOLATION


def test_the_static_denylist_is_the_crds() -> None:
    """The CRD's CEL rule holds every name the operator always refuses."""
    from arcx_operator.crd import pod_options_schema

    rules = pod_options_schema()["env"]["items"]["x-kubernetes-validations"]
    text = " ".join(r["rule"] for r in rules)
    for name in pol.ALWAYS_DENIED_ENV:
        assert f"'{name}'" in text
    for prefix in pol.ALWAYS_DENIED_ENV_PREFIXES:
        assert f"startsWith('{prefix}')" in text


# --- flags ------------------------------------------------------------------------------


def test_flags_absent_mean_no_admin_policy() -> None:
    assert policy_from_args(build_parser().parse_args([])) == pol.Policy()


def test_flags_set_each_rule() -> None:
    args = build_parser().parse_args(
        [
            "--allowed-image-repositories=ghcr.io/a/b, registry.local/",
            "--allowed-service-accounts=",
            "--allowed-volume-types=persistentVolumeClaim,emptyDir",
            "--denied-env=HF_TOKEN",
        ]
    )
    assert policy_from_args(args) == pol.Policy(
        image_repositories=("ghcr.io/a/b", "registry.local/"),
        service_accounts=(),
        volume_types=("persistentVolumeClaim", "emptyDir"),
        denied_env=("HF_TOKEN",),
    )
    star = build_parser().parse_args(["--allowed-service-accounts=*"])
    assert policy_from_args(star).service_accounts is None


def test_env_sets_the_policy_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCX_ALLOWED_VOLUME_TYPES", "emptyDir")
    assert policy_from_args(build_parser().parse_args([])).volume_types == ("emptyDir",)


def test_an_unknown_volume_type_is_a_flag_error() -> None:
    args = build_parser().parse_args(["--allowed-volume-types=hostpath"])
    with pytest.raises(ValueError, match="--allowed-volume-types: unknown volume type"):
        policy_from_args(args)


# --- the reconcile refuses before creating anything --------------------------------------


class RecordingKube:
    """Stands in for kube.Kube (the API client) to show that nothing is created: the real
    API round trip is covered by tests/cluster; here only the order of decisions matters."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def get_jobset(self, namespace: str, name: str) -> None:
        return None

    def ensure_config_map(self, desired: dict) -> dict:
        self.created.append("ConfigMap")
        return desired

    def create_jobset(self, desired: dict) -> tuple[dict, bool]:
        self.created.append("JobSet")
        return desired, True


def test_a_policy_violation_fails_the_resource_and_creates_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from arcx_operator import handlers
    from arcx_operator.observability import Health, Metrics
    from arcx_operator.progress import ProgressReader

    events: list[tuple[str, str]] = []
    monkeypatch.setattr(
        handlers.kopf, "event", lambda body, type, reason, message: events.append((reason, message))
    )
    kube = RecordingKube()
    ctx = handlers.Context(
        kube=kube,  # type: ignore[arg-type]
        metrics=Metrics(),
        health=Health(),
        progress=ProgressReader(),
        policy=CHART_DEFAULT,
    )
    body = as_stored(load_sample("cpu-2x2.yaml"))  # a hostPath volume, an image off the list
    status = handlers.reconcile(ctx, body)
    assert kube.created == []
    assert status is not None and status["phase"] == "Failed"
    failed = next(x for x in status["conditions"] if x["type"] == "Failed")
    assert failed["reason"] == "PolicyViolation"
    assert "spec.volumes[0].hostPath" in failed["message"]
    assert "spec.image: repository arcx-job" in failed["message"]
    assert events and events[0][0] == "PolicyViolation"
    # The same resource under a policy that allows it is created.
    ctx.policy = replace(CHART_DEFAULT, image_repositories=None, volume_types=None)
    handlers.reconcile(ctx, body)
    assert kube.created == ["ConfigMap", "JobSet"]
    assert parse_resource(body).spec.volumes[0]["hostPath"]["path"] == "/data"
