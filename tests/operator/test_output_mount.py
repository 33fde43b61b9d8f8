"""The OutputMounted condition: a warning when output.uri is a filesystem path no volume
mount covers (pure function of the spec), and its place in the resource's status."""

from __future__ import annotations

from typing import Any

import pytest
from op_helpers import load_sample

from arcx_operator import podspec
from arcx_operator import status as st
from arcx_operator.spec import JobSpec, parse_spec


def _spec(uri: str, mounts: list[dict[str, Any]] | None = None) -> JobSpec:
    spec = load_sample("cpu-2x2.yaml")["spec"]
    spec["output"]["uri"] = uri
    spec["volumeMounts"] = mounts or []
    return parse_spec(spec)


DATA = {"name": "data", "mountPath": "/data"}


@pytest.mark.parametrize(
    ("uri", "mounts", "status", "reason", "names"),
    [
        ("/data/runs/x", [DATA], "True", "Mounted", "volume data mounted at /data"),
        ("file:///data/runs/x", [DATA], "True", "Mounted", "/data"),
        ("/data", [DATA], "True", "Mounted", "/data"),
        ("/data/", [{"name": "data", "mountPath": "/data/"}], "True", "Mounted", "/data"),
        ("/database/x", [DATA], "False", "OutputNotMounted", "/database/x"),
        ("/data/runs/x", [], "False", "OutputNotMounted", "not under any spec.volumeMounts"),
        ("/data/../etc/x", [DATA], "False", "OutputNotMounted", "/data/../etc/x"),
        ("runs/x", [DATA], "False", "OutputNotMounted", "relative path"),
        ("gs://bucket/runs/x", [], "True", "ObjectStore", "gs://bucket/runs/x"),
        (
            "/data/runs/x",
            [{**DATA, "readOnly": True}],
            "False",
            "OutputReadOnly",
            "set readOnly: false",
        ),
        (
            "/data/runs/x",
            [{**DATA, "readOnly": True}, {"name": "runs", "mountPath": "/data/runs"}],
            "True",
            "Mounted",
            "volume runs mounted at /data/runs",
        ),
    ],
)
def test_output_condition(
    uri: str, mounts: list[dict[str, Any]], status: str, reason: str, names: str
) -> None:
    cond = podspec.output_condition(_spec(uri, mounts), generation=3)
    assert (cond["type"], cond["status"], cond["reason"]) == ("OutputMounted", status, reason)
    assert names in cond["message"] and cond["observedGeneration"] == 3


def test_the_sample_output_is_mounted() -> None:
    spec = parse_spec(load_sample("cpu-2x2.yaml")["spec"])
    assert podspec.output_condition(spec, 1)["status"] == "True"


def test_the_warning_is_a_condition_not_a_phase() -> None:
    spec = _spec("/data/runs/x")
    warn = podspec.output_condition(spec, 1)
    s = st.next_status(
        {},
        st.observe(spec, None),
        generation=1,
        jobset_name=None,
        progress=None,
        now="2026-01-01T00:00:00Z",
        extra_conditions=[warn],
    )
    assert s["phase"] == "Pending"
    conds = {c["type"]: c for c in s["conditions"]}
    assert conds["OutputMounted"]["status"] == "False"
    assert conds["OutputMounted"]["reason"] == "OutputNotMounted"
    assert conds["OutputMounted"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
