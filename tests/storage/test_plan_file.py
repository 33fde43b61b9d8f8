"""``plan.json`` (arcx_store.plan): its round trip, create-only writes, and hostile bytes,
each refused with a StoreFormatError naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from arcx_store import layout
from arcx_store.backends.local import LocalStorage
from arcx_store.errors import StoreFormatError
from arcx_store.plan import MAX_PLAN_BYTES, PlanSummary, encode_plan, parse_plan, write_plan

PLAN = PlanSummary(
    tasks=200,
    tasksSampled=8,
    sequences=250,
    sequencesSkipped=25,
    tokens=120_000,
    tokensKept=110_000,
    paddedSlots=131_072,
    units=4,
    bytesTotal=9_876_543,
    paddingFraction=0.0845,
    flopsModel=1.5e15,
    flopsExecuted=1.7e15,
    relativeError95=0.12,
)


def _obj(**changes: object) -> bytes:
    obj = PLAN.to_json()
    for k, v in changes.items():
        if v is ...:
            obj.pop(k)
        else:
            obj[k] = v
    return json.dumps(obj).encode()


def test_round_trip_is_exact_and_camel_case() -> None:
    data = encode_plan(PLAN)
    assert parse_plan(data) == PLAN
    obj = json.loads(data)
    assert obj["tokensKept"] == 110_000 and obj["flopsExecuted"] == 1.7e15
    assert data.endswith(b"\n") and list(obj) == sorted(obj)


def test_relative_error_is_optional_and_unknown_fields_are_ignored() -> None:
    got = parse_plan(_obj(relativeError95=..., addedByANewerRunner={"x": 1}))
    assert got.relativeError95 is None and got.tasks == 200
    assert "relativeError95" not in got.to_json()
    assert parse_plan(_obj(paddingFraction=0)).paddingFraction == 0.0  # an int is a number


def test_write_is_create_only(tmp_path: Path) -> None:
    store = LocalStorage(str(tmp_path / "s"))
    assert write_plan(store, PLAN) is True
    later = PlanSummary(**{**PLAN.to_json(), "tasksSampled": 1})
    assert write_plan(store, later) is False, "a resumed attempt keeps the first plan"
    assert parse_plan(store.read_bytes(layout.PLAN)) == PLAN


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "not an object"),
        (_obj(tasks=...), "tasks must be a count"),
        (_obj(tokens=-1), "tokens must be a count"),
        (_obj(units=True), "units must be a count"),
        (_obj(bytesTotal=1.5), "bytesTotal must be a count"),
        (_obj(sequences="250"), "sequences must be a count"),
        (_obj(flopsModel=None), "flopsModel must be a non-negative number"),
        (_obj(flopsExecuted=-1.0), "flopsExecuted must be a non-negative number"),
        (b'{"tasks": 1, "flopsModel": NaN}', "must be"),
        (_obj(paddingFraction=1.5), "paddingFraction 1.5 is above 1"),
        (_obj(relativeError95="small"), "relativeError95"),
        (b" " * (MAX_PLAN_BYTES + 1), "more than a plan summary holds"),
        (b"[" * 100_000 + b"]" * 100_000, "plan.json"),
    ],
)
def test_malformed_plans_are_one_typed_error(data: bytes, match: str) -> None:
    with pytest.raises(StoreFormatError, match=match) as err:
        parse_plan(data, "gs://b/run/plan.json")
    assert "plan" in str(err.value)
