"""Hypothesis strategies shared by the data-layer tests."""

from __future__ import annotations

from hypothesis import strategies as st

from arcx.tasks.task import Grid


@st.composite
def grids(draw: st.DrawFn, max_side: int = 30) -> Grid:
    """Any valid ARC grid: 1..max_side on each side, cells 0..9."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    cells = st.integers(0, 9)
    return tuple(tuple(draw(st.lists(cells, min_size=w, max_size=w))) for _ in range(h))
