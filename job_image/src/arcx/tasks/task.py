"""ARC tasks as immutable values, their canonical JSON form, and content-hash task ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

Grid = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Pair:
    """One input grid and its output; a test pair's output is None when the answer is unknown."""

    input: Grid
    output: Grid | None


@dataclass(frozen=True)
class Task:
    task_id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


def grid_to_lists(grid: Grid) -> list[list[int]]:
    return [list(row) for row in grid]


def lists_to_grid(rows: Any) -> Grid:
    """Freeze a (validated) list of lists into a Grid."""
    return tuple(tuple(int(v) for v in row) for row in rows)


def grid_bytes(grid: Grid | None) -> bytes:
    """A canonical byte form of a grid: height, width, then one byte a cell, row by row.

    ``None`` (an unknown test output) is the single byte 0xff, which no grid starts with
    (sides are 1..30).
    """
    if grid is None:
        return b"\xff"
    return bytes((len(grid), len(grid[0]))) + b"".join(map(bytes, grid))


def content_id(train: tuple[Pair, ...], test: tuple[Pair, ...]) -> str:
    """A stable id from the task's grids alone: the first 16 hex digits of a SHA-256.

    The hash covers the number of train pairs, then every grid in order (train inputs and
    outputs, test inputs and outputs) in :func:`grid_bytes` form. Test outputs are part of
    the content, so the same inputs with another answer are another task. Metadata (origin,
    row number) is not, so duplicates share an id.
    """
    h = hashlib.sha256(len(train).to_bytes(4, "big"))
    for pair in (*train, *test):
        h.update(grid_bytes(pair.input))
        h.update(grid_bytes(pair.output))
    return h.hexdigest()[:16]


def make_task(train: tuple[Pair, ...], test: tuple[Pair, ...], metadata: dict[str, Any]) -> Task:
    return Task(task_id=content_id(train, test), train=train, test=test, metadata=metadata)


def challenge_record(task: Task) -> dict[str, Any]:
    """What the model may see: every train pair, and the test inputs only."""
    return {
        "task_id": task.task_id,
        "train": [
            {"input": grid_to_lists(p.input), "output": grid_to_lists(p.output or ())}
            for p in task.train
        ],
        "test": [{"input": grid_to_lists(p.input)} for p in task.test],
        "metadata": task.metadata,
    }


def solution_record(task: Task) -> dict[str, Any]:
    """The test outputs, stored apart from the challenge (null where unknown)."""
    return {
        "task_id": task.task_id,
        "test_outputs": [None if p.output is None else grid_to_lists(p.output) for p in task.test],
    }


def task_from_records(challenge: dict[str, Any], solution: dict[str, Any] | None) -> Task:
    """Join a challenge record with its solution record (written by this package)."""
    outputs = solution["test_outputs"] if solution is not None else [None] * len(challenge["test"])
    if len(outputs) != len(challenge["test"]):
        raise ValueError(
            f"task {challenge['task_id']}: {len(challenge['test'])} test inputs but "
            f"{len(outputs)} test outputs in the solutions"
        )
    return Task(
        task_id=challenge["task_id"],
        train=tuple(
            Pair(lists_to_grid(p["input"]), lists_to_grid(p["output"])) for p in challenge["train"]
        ),
        test=tuple(
            Pair(lists_to_grid(p["input"]), None if out is None else lists_to_grid(out))
            for p, out in zip(challenge["test"], outputs, strict=True)
        ),
        metadata=challenge.get("metadata", {}),
    )
