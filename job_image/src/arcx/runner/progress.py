"""Progress: a bar with an ETA on a terminal, one JSON line per event otherwise.

Only process 0 of a slice reports. The clock is injected so the formatting is testable.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def log_event(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """One structured log line (JSON) on stderr."""
    stream = stream or sys.stderr
    stream.write(json.dumps({"event": event, **fields}, sort_keys=True, default=str) + "\n")
    stream.flush()


class Progress:
    def __init__(
        self,
        *,
        units_total: int,
        units_done: int,
        enabled: bool,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interactive: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.clock = clock
        self.start = clock()
        self.units_total = units_total
        self.units_done = units_done
        self.units_at_start = units_done
        self.tasks = 0
        self.tokens = 0

    def add_tokens(self, tasks: int, tokens: int) -> None:
        self.tasks += tasks
        self.tokens += tokens

    def unit_committed(self, unit: int, **fields: Any) -> None:
        self.units_done += 1
        if not self.enabled:
            return
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.tokens / elapsed
        done_here = self.units_done - self.units_at_start
        left = self.units_total - self.units_done
        eta = elapsed / done_here * left if done_here else float("nan")
        if self.interactive:
            width = 30
            filled = int(width * self.units_done / max(self.units_total, 1))
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.units_done}/{self.units_total} units"
                f"  {self.tasks} tasks  {rate:,.0f} tok/s  ETA {_fmt_eta(eta)}   "
            )
            if left == 0:
                self.stream.write("\n")
            self.stream.flush()
        else:
            log_event(
                "unit-committed",
                self.stream,
                unit=unit,
                unitsCommitted=self.units_done,
                unitsTotal=self.units_total,
                tasks=self.tasks,
                tokens=self.tokens,
                tokensPerSec=round(rate, 1),
                etaSeconds=None if eta != eta else round(eta, 1),
                **fields,
            )


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds:
        return "--:--"
    s = int(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"{s // 60:02d}:{s % 60:02d}"
    )
