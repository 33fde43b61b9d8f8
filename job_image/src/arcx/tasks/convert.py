"""Records (one row of a source) -> Tasks, for both record layouts a source may hold.

- ARC-AGI layout: ``{"train": [{"input": g, "output": g}, ...], "test": [{"input": g,
  "output": g?}, ...]}`` (a test output may be absent when the answer is unknown).
- barc layout: ``{"examples": [[input, output], ...], "source": program, "seeds": [...]}``,
  split into train and test pairs by the seeded rule in :mod:`arcx.tasks.barc`.

Pure functions: a bad record raises InvalidRecord (from :mod:`arcx.tasks.grids`) whose message names the key, the index
and the rule broken; the caller turns it into a line of the rejected file.
"""

from __future__ import annotations

from typing import Any

from arcx.tasks.barc import DEFAULT_SPLIT, BarcSplit, barc_row_to_task
from arcx.tasks.grids import InvalidRecord, validate_grid
from arcx.tasks.task import Pair, Task, make_task


def _pairs(record: dict[str, Any], key: str, *, output_required: bool) -> tuple[Pair, ...]:
    if key not in record:
        raise InvalidRecord(f"missing key {key!r}")
    value = record[key]
    if not isinstance(value, list):
        raise InvalidRecord(f"{key} is a {type(value).__name__}, not a list of pairs")
    if not value:
        raise InvalidRecord(f"{key} is empty; a task needs at least one {key} pair")
    pairs = []
    for i, pair in enumerate(value):
        if not isinstance(pair, dict):
            raise InvalidRecord(f"{key}[{i}] is a {type(pair).__name__}, not an object")
        if "input" not in pair:
            raise InvalidRecord(f"{key}[{i}] is missing key 'input'")
        grid_in = validate_grid(pair["input"], f"{key}[{i}].input")
        if pair.get("output") is None:
            if output_required:
                raise InvalidRecord(f"{key}[{i}] is missing key 'output'")
            pairs.append(Pair(grid_in, None))
        else:
            pairs.append(Pair(grid_in, validate_grid(pair["output"], f"{key}[{i}].output")))
    return tuple(pairs)


def arc_record_to_task(record: dict[str, Any], metadata: dict[str, Any]) -> Task:
    train = _pairs(record, "train", output_required=True)
    test = _pairs(record, "test", output_required=False)
    return make_task(train, test, metadata)


def record_to_task(
    record: Any, metadata: dict[str, Any], *, seed: int, split: BarcSplit = DEFAULT_SPLIT
) -> Task:
    """Turn one record into a Task, or raise InvalidRecord (InvalidGrid is one) saying why."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"record is a {type(record).__name__}, not an object")
    if "examples" in record:
        return barc_row_to_task(record, metadata, seed=seed, split=split)
    if "train" in record or "test" in record:
        return arc_record_to_task(record, metadata)
    raise InvalidRecord(
        "missing keys: expected 'examples' (barc layout) or 'train' and 'test' (ARC-AGI "
        f"layout); found {sorted(map(str, record))}"
    )
