"""Grid validation: every rule, and the reason a broken row gives."""

from __future__ import annotations

import pytest

from arcx.tasks.convert import record_to_task
from arcx.tasks.grids import InvalidGrid, InvalidRecord, validate_grid


def test_valid_grid_becomes_tuples() -> None:
    assert validate_grid([[0, 1], [9, 2]], "g") == ((0, 1), (9, 2))


def test_sides_of_1_and_30_are_accepted() -> None:
    assert validate_grid([[5]], "g") == ((5,),)
    big = [[1] * 30 for _ in range(30)]
    assert len(validate_grid(big, "g")) == 30


@pytest.mark.parametrize(
    ("grid", "reason"),
    [
        ([[1, 2], [3]], "not rectangular: row 1 has 1 cells but row 0 has 2"),
        ([[0] * 31 for _ in range(31)], "grid has 31 rows; each side must be 1..30"),
        ([[0] * 31], "row 0 has 31 cells; each side must be 1..30"),
        ([[1, 10]], "cell [0][1] is 10; cells must be integers 0..9"),
        ([[1, -1]], "cell [0][1] is -1; cells must be integers 0..9"),
        ([[1, "2"]], "cell [0][1] is '2' (str); cells must be integers 0..9"),
        ([[1, 2.0]], "cell [0][1] is 2.0 (float); cells must be integers 0..9"),
        ([[True]], "cell [0][0] is True (bool)"),
        ([[1], None], "row 1 is a NoneType, not a list of cells"),
        ("0123", "grid is a str, not a list of rows"),
        ([], "grid has no rows"),
        ([[]], "row 0 is empty"),
    ],
)
def test_broken_grids_name_the_rule(grid: object, reason: str) -> None:
    with pytest.raises(InvalidGrid, match=None) as info:
        validate_grid(grid, "examples[0][1]")
    assert str(info.value).startswith("examples[0][1]: ")
    assert reason in str(info.value)


def _barc(examples: object) -> dict:
    return {"examples": examples, "source": "def main(): ...", "seeds": ["s"]}


GOOD = [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (_barc([[GOOD, GOOD], [GOOD, [[1, 2], [3]]]]), "examples[1][1]: not rectangular"),
        (_barc([[GOOD, GOOD], [[[0] * 31] * 31, GOOD]]), "examples[1][0]: grid has 31 rows"),
        (_barc([[GOOD, GOOD], [GOOD, [[10]]]]), "examples[1][1]: cell [0][0] is 10"),
        (_barc([[GOOD, GOOD], [GOOD, [["a"]]]]), "examples[1][1]: cell [0][0] is 'a' (str)"),
        (_barc("not a list"), "examples is a str, not a list of pairs"),
        (_barc([]), "examples is empty"),
        (_barc([[GOOD, GOOD]]), "examples has 1 pair(s); a task needs at least 2"),
        (_barc([[GOOD, GOOD], [GOOD]]), "examples[1] is not an [input, output] pair"),
        ({"source": "x", "seeds": []}, "missing keys: expected 'examples'"),
        ({"train": [{"input": GOOD, "output": GOOD}]}, "missing key 'test'"),
        ({"train": [], "test": [{"input": GOOD}]}, "train is empty"),
        (
            {"train": [{"input": GOOD}], "test": [{"input": GOOD}]},
            "train[0] is missing key 'output'",
        ),
        (
            {"train": [{"output": GOOD}], "test": [{"input": GOOD}]},
            "train[0] is missing key 'input'",
        ),
        (
            {"train": [{"input": GOOD, "output": GOOD}], "test": [{"input": [[1, 2], [3]]}]},
            "test[0].input: not rectangular",
        ),
        ("a string", "record is a str, not an object"),
    ],
)
def test_broken_rows_are_rejected_with_reasons(record: object, reason: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        record_to_task(record, {}, seed=0)
    assert reason in str(info.value)


def test_test_output_may_be_unknown() -> None:
    task = record_to_task(
        {"train": [{"input": GOOD, "output": GOOD}], "test": [{"input": GOOD}]}, {}, seed=0
    )
    assert task.test[0].output is None
