"""Grid validation: rectangular, 1..30 cells on each side, integers 0..9.

Pure functions. A failure raises InvalidGrid whose message names the place in the row
(for example ``examples[2][0]``), the rule broken, and the offending value.
"""

from __future__ import annotations

from typing import Any

from arcx.tasks.task import Grid

MAX_SIDE = 30
NUM_COLORS = 10


_INT_ONLY = {int}
_COLORS = frozenset(range(NUM_COLORS))


class InvalidRecord(ValueError):
    """A record (one row of a source) that cannot become a task; the message says where and why."""


class InvalidGrid(InvalidRecord):
    """A grid that breaks a rule; the message says where and which rule."""


def _type_name(value: Any) -> str:
    return type(value).__name__


def validate_grid(value: Any, where: str) -> Grid:
    """Return ``value`` as a Grid, or raise InvalidGrid naming ``where`` and the rule broken."""
    if not isinstance(value, list | tuple):
        raise InvalidGrid(f"{where}: grid is a {_type_name(value)}, not a list of rows")
    if len(value) == 0:
        raise InvalidGrid(f"{where}: grid has no rows (each side must be 1..{MAX_SIDE})")
    if len(value) > MAX_SIDE:
        raise InvalidGrid(f"{where}: grid has {len(value)} rows; each side must be 1..{MAX_SIDE}")
    rows: list[tuple[int, ...]] = []
    width = None
    for r, row in enumerate(value):
        # Fast path, at C speed: a list of plain ints within range and of the same width.
        if (
            type(row) is list
            and 0 < len(row) <= MAX_SIDE
            and (width is None or len(row) == width)
            and set(map(type, row)) == _INT_ONLY
            and _COLORS.issuperset(row)
        ):
            width = len(row)
            rows.append(tuple(row))
            continue
        if not isinstance(row, list | tuple):
            raise InvalidGrid(f"{where}: row {r} is a {_type_name(row)}, not a list of cells")
        if len(row) == 0:
            raise InvalidGrid(f"{where}: row {r} is empty (each side must be 1..{MAX_SIDE})")
        if len(row) > MAX_SIDE:
            raise InvalidGrid(
                f"{where}: row {r} has {len(row)} cells; each side must be 1..{MAX_SIDE}"
            )
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise InvalidGrid(
                f"{where}: not rectangular: row {r} has {len(row)} cells but row 0 has {width}"
            )
        for c, cell in enumerate(row):
            # bool is an int subclass; True is not a colour.
            if not isinstance(cell, int) or isinstance(cell, bool):
                raise InvalidGrid(
                    f"{where}: cell [{r}][{c}] is {cell!r} ({_type_name(cell)}); "
                    f"cells must be integers 0..{NUM_COLORS - 1}"
                )
            if not 0 <= cell < NUM_COLORS:
                raise InvalidGrid(
                    f"{where}: cell [{r}][{c}] is {cell}; cells must be integers 0..{NUM_COLORS - 1}"
                )
        rows.append(tuple(row))
    return tuple(rows)


def grid_shape(grid: Grid) -> tuple[int, int]:
    return len(grid), len(grid[0])
