"""A malformed or unreadable output store is condition StoreReadable=False on the resource,
never an exception out of the reconcile (which kopf would retry forever)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from arcx_store import layout
from op_helpers import as_stored, load_sample

from arcx_operator import handlers
from arcx_operator.observability import Health, Metrics
from arcx_operator.policy import Policy
from arcx_operator.progress import ProgressReader


class ExistingJobSetKube:
    """Stands in for kube.Kube with a JobSet that already runs: these tests are about the
    progress read, and the API side of the reconcile is covered by tests/cluster."""

    def __init__(self, uid: str) -> None:
        self.uid = uid

    def _owned(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["ownerReferences"] = [{"uid": self.uid}]
        return obj

    def get_jobset(self, namespace: str, name: str) -> dict[str, Any]:
        return self._owned(
            {
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"suspend": False},
                "status": {"replicatedJobsStatus": [{"ready": 1}]},
            }
        )

    def ensure_config_map(self, desired: dict[str, Any]) -> dict[str, Any]:
        return self._owned(desired)


def _reconcile(store: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **k: None)
    body = as_stored(load_sample("cpu-2x2.yaml"), uid="u-1")
    body["spec"]["output"]["uri"] = str(store)
    ctx = handlers.Context(
        kube=ExistingJobSetKube("u-1"),  # type: ignore[arg-type]
        metrics=Metrics(),
        health=Health(),
        progress=ProgressReader(min_interval_s=0),
        policy=Policy(),
    )
    status = handlers.reconcile(ctx, body)
    assert status is not None and status["phase"] == "Running"
    return {x["type"]: x for x in status["conditions"]}


def _manifest(plan_units: int) -> bytes:
    units = [{"unit": u} for u in range(plan_units)]
    return json.dumps({"formatVersion": layout.FORMAT_VERSION, "plan": {"units": units}}).encode()


@pytest.mark.parametrize(
    ("manifest", "what"),
    [
        (b"\xff\xfe not utf-8", "UTF-8"),
        (b"{not json", "JSON"),
        (b"[1, 2]", "list"),
        (b'{"formatVersion": 1, "plan": []}', "plan"),
    ],
)
def test_a_malformed_manifest_is_a_condition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest: bytes, what: str
) -> None:
    (tmp_path / layout.MANIFEST).write_bytes(manifest)
    conds = _reconcile(tmp_path, monkeypatch)
    cond = conds["StoreReadable"]
    assert (cond["status"], cond["reason"]) == ("False", "MalformedStore")
    assert str(tmp_path) in cond["message"]


def test_a_readable_store_is_a_true_condition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / layout.MANIFEST).write_bytes(_manifest(2))
    cond = _reconcile(tmp_path, monkeypatch)["StoreReadable"]
    assert (cond["status"], cond["reason"]) == ("True", "StoreRead")


def test_an_unreadable_store_is_a_condition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / layout.MANIFEST).mkdir()  # reading it fails with an OSError
    cond = _reconcile(tmp_path, monkeypatch)["StoreReadable"]
    assert cond["status"] == "False"
    assert cond["reason"] in ("StoreUnreadable", "MalformedStore")


@pytest.mark.parametrize("marker", [b"[1, 2]", b"\xff\xfe", b"{}", b"null"])
def test_a_malformed_marker_is_not_counted_and_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: bytes
) -> None:
    (tmp_path / layout.MANIFEST).write_bytes(_manifest(2))
    key = tmp_path / layout.marker_key(0)
    key.parent.mkdir(parents=True)
    key.write_bytes(marker)
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **k: None)
    body = as_stored(load_sample("cpu-2x2.yaml"), uid="u-1")
    body["spec"]["output"]["uri"] = str(tmp_path)
    ctx = handlers.Context(
        kube=ExistingJobSetKube("u-1"),  # type: ignore[arg-type]
        metrics=Metrics(),
        health=Health(),
        progress=ProgressReader(min_interval_s=0),
    )
    status = handlers.reconcile(ctx, body)
    assert status is not None
    assert status["progress"]["unitsTotal"] == 2 and status["progress"]["unitsCommitted"] == 0
    conds = {x["type"]: x for x in status["conditions"]}
    assert conds["StoreReadable"]["status"] == "True"


def _status(store: Path, monkeypatch: pytest.MonkeyPatch, reader: ProgressReader) -> dict[str, Any]:
    monkeypatch.setattr(handlers.kopf, "event", lambda *a, **k: None)
    body = as_stored(load_sample("cpu-2x2.yaml"), uid="u-1")
    body["spec"]["output"]["uri"] = str(store)
    ctx = handlers.Context(
        kube=ExistingJobSetKube("u-1"),  # type: ignore[arg-type]
        metrics=Metrics(),
        health=Health(),
        progress=reader,
    )
    status = handlers.reconcile(ctx, body)
    assert status is not None
    return status


@pytest.mark.parametrize(
    "plan", [b"{not json", b"[1]", b'{"tasks": -1}', b"\xff\xfe", b" " * (1 << 20)]
)
def test_a_malformed_plan_is_ignored_and_a_good_one_shown_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: bytes
) -> None:
    from arcx_store.plan import PlanSummary, encode_plan

    (tmp_path / layout.MANIFEST).write_bytes(_manifest(2))
    (tmp_path / layout.PLAN).write_bytes(plan)
    reader = ProgressReader(min_interval_s=0)
    status = _status(tmp_path, monkeypatch, reader)
    assert "plan" not in status and status["progress"]["unitsTotal"] == 2
    conds = {x["type"]: x for x in status["conditions"]}
    assert conds["StoreReadable"]["status"] == "True"
    good = PlanSummary(8, 8, 6, 2, 900, 850, 1024, 2, 4096, 0.12, 1e9, 1.2e9, 0.0)
    (tmp_path / layout.PLAN).write_bytes(encode_plan(good))
    status = _status(tmp_path, monkeypatch, reader)  # the same reader: read again until one parses
    assert status["plan"]["tokensKept"] == 850 and status["plan"]["sequencesSkipped"] == 2
    assert status["plan"]["summary"].startswith("8 tasks, 6 sequences (2 skipped)")
