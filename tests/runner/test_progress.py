"""Progress reporting: JSON lines off a terminal, a bar with an ETA on one (clock injected)."""

from __future__ import annotations

import io
import json

from arcx.runner.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_carry_counts_rate_and_eta():
    out, clock = io.StringIO(), Clock()
    p = Progress(
        units_total=4, units_done=1, enabled=True, stream=out, clock=clock, interactive=False
    )
    clock.now += 10
    p.add_tokens(tasks=8, tokens=5000)
    p.unit_committed(1, paddingFraction=0.25)
    line = json.loads(out.getvalue())
    assert line["event"] == "unit-committed" and line["unit"] == 1
    assert (line["unitsCommitted"], line["unitsTotal"], line["tasks"], line["tokens"]) == (
        2,
        4,
        8,
        5000,
    )
    assert line["tokensPerSec"] == 500.0
    assert line["etaSeconds"] == 20.0  # one unit in 10 s, two left
    assert line["paddingFraction"] == 0.25


def test_terminal_bar_and_silence_off_host_0():
    out, clock = io.StringIO(), Clock()
    p = Progress(
        units_total=2, units_done=0, enabled=True, stream=out, clock=clock, interactive=True
    )
    clock.now += 5
    p.add_tokens(tasks=3, tokens=1000)
    p.unit_committed(0)
    assert (
        "1/2 units" in out.getvalue()
        and "ETA 00:05" in out.getvalue()
        and "200 tok/s" in out.getvalue()
    )
    quiet = io.StringIO()
    Progress(units_total=2, units_done=0, enabled=False, stream=quiet, clock=clock).unit_committed(
        0
    )
    assert quiet.getvalue() == ""
