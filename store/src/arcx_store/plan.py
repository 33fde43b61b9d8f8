"""``plan.json``: the job's plan summary, written by the runner when a job starts.

Process 0 of slice 0 writes it once, from the first unit it runs (already tokenised and
batched by the runner's own planner), scaled to the whole dataset by the same pure
functions as ``arcx plan`` (arcx.planning.estimate). The operator copies it into the
status as ``plan``. JAX- and numpy-free; ``parse_plan`` trusts nothing in the bytes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from arcx_store.errors import StoreFormatError
from arcx_store.jsonfile import encode, is_count, parse_object

# A plan summary is a few hundred bytes; the reader refuses anything far larger unread.
MAX_PLAN_BYTES = 64 * 1024

COUNT_FIELDS = (
    "tasks",
    "tasksSampled",
    "sequences",
    "sequencesSkipped",
    "tokens",
    "tokensKept",
    "paddedSlots",
    "units",
    "bytesTotal",
)
NUMBER_FIELDS = ("paddingFraction", "flopsModel", "flopsExecuted")


@dataclass(frozen=True)
class PlanSummary:
    tasks: int
    tasksSampled: int  # tasks whose prompts were built; the rest are scaled up
    sequences: int
    sequencesSkipped: int
    tokens: int
    tokensKept: int
    paddedSlots: int
    units: int
    bytesTotal: int
    paddingFraction: float
    flopsModel: float
    flopsExecuted: float
    # Half-width of the 95% interval on token totals, relative; 0 when every task was
    # read, None when fewer than two were (no spread to estimate it from).
    relativeError95: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def encode_plan(plan: PlanSummary) -> bytes:
    return encode(plan.to_json())


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def parse_plan(data: bytes, what: str = "plan.json") -> PlanSummary:
    """The plan summary in ``data``; StoreFormatError naming ``what`` and the field for
    anything else (oversized, not JSON, a field missing, negative or of the wrong type).
    Unknown fields are ignored, so a newer runner's extra numbers do not break an older
    operator."""
    if len(data) > MAX_PLAN_BYTES:
        raise StoreFormatError(f"{what} is {len(data)} bytes, more than a plan summary holds")
    obj = parse_object(data, what)
    for name in COUNT_FIELDS:
        if not is_count(obj.get(name)):
            raise StoreFormatError(f"{what}: {name} must be a count, got {obj.get(name)!r}")
    for name in NUMBER_FIELDS:
        if not _number(obj.get(name)):
            raise StoreFormatError(
                f"{what}: {name} must be a non-negative number, got {obj.get(name)!r}"
            )
    if not obj["paddingFraction"] <= 1:
        raise StoreFormatError(f"{what}: paddingFraction {obj['paddingFraction']} is above 1")
    err = obj.get("relativeError95")
    if err is not None and not _number(err):
        raise StoreFormatError(f"{what}: relativeError95 must be a non-negative number or absent")
    return PlanSummary(
        **{n: obj[n] for n in COUNT_FIELDS},
        **{n: float(obj[n]) for n in NUMBER_FIELDS},
        relativeError95=None if err is None else float(err),
    )


def write_plan(storage: Any, plan: PlanSummary) -> bool:
    """Create ``plan.json`` unless an earlier attempt did; True if this call wrote it.
    The first attempt's plan stands, so a resumed job keeps the numbers it started with."""
    from arcx_store import layout

    return bool(storage.create_only(layout.PLAN, encode_plan(plan)))
