"""Progress: a live bar on a terminal, one JSON line per event in a pod; the same events.

One switch decides how events are shown: ``--log-format {auto,human,json}`` on the `arcx`
command line, carried to child processes (``arcx demo``'s local pods) in the environment
variable ``ARCX_LOG_FORMAT``. ``auto`` (the default) draws bars when stderr is a terminal
and writes JSON lines otherwise, so a pod's log stays machine-readable. Bars are tqdm's
(already installed with huggingface_hub, transformers and datasets).

Only process 0 of a slice reports. Clocks are injected so the numbers are testable.
The runner also keeps its unit events in the store (``events/``, see :class:`EventRecorder`)
so ``arcx report`` can draw throughput over time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from arcx_store.layout import EVENTS_DIR, EVENTS_SUFFIX, events_key

LOG_FORMAT_ENV = "ARCX_LOG_FORMAT"
LOG_FORMATS = ("auto", "human", "json")


def log_format() -> str:
    value = os.environ.get(LOG_FORMAT_ENV, "auto").strip().lower() or "auto"
    return value if value in LOG_FORMATS else "auto"


def set_log_format(value: str) -> None:
    """Choose the format for this process and the processes it starts."""
    if value not in LOG_FORMATS:
        raise ValueError(f"--log-format must be one of {LOG_FORMATS}, got {value!r}")
    os.environ[LOG_FORMAT_ENV] = value


def is_human(stream: TextIO) -> bool:
    fmt = log_format()
    if fmt != "auto":
        return fmt == "human"
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def log_event(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """One structured log line (JSON) on stderr; on a terminal, a short readable line."""
    stream = stream or sys.stderr
    if is_human(stream):
        text = "  ".join(f"{k}={v}" for k, v in sorted(fields.items()))
        _write_line(stream, f"[{event}] {text}".rstrip())
        return
    stream.write(json.dumps({"event": event, **fields}, sort_keys=True, default=str) + "\n")
    stream.flush()


def _write_line(stream: TextIO, text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=stream)  # above any live bar, which redraws itself below


def fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "--:--"
    s = int(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"{s // 60:02d}:{s % 60:02d}"
    )


def _bar(total: int, initial: int, unit: str, desc: str, stream: TextIO, *, eta: bool) -> Any:
    """A tqdm bar; ``eta``: tqdm's own elapsed<remaining (the runner computes its own)."""
    from tqdm import tqdm

    try:
        size = os.get_terminal_size(stream.fileno())
        cols, rows = size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        cols = rows = 0
    timing = "  {elapsed}<{remaining}" if eta else ""
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=stream,
        dynamic_ncols=cols > 0,
        # Some ptys report a 0 x 0 terminal; tqdm would then draw nothing at all.
        ncols=None if cols > 0 else 100,
        nrows=None if rows > 0 else 24,
        mininterval=0.2,
        bar_format="{desc}{bar:30}| {n_fmt}/{total_fmt} " + unit + timing + "{postfix}",
    )


class EventRecorder:
    """The runner's unit events, kept in the store at ``events/<attempt>.jsonl``.

    Each attempt (one start of process 0 of a slice) writes its own file, so a resumed job
    keeps the events of every attempt. The file is rewritten at most every
    ``flush_every_s`` seconds and at the end; losing the last seconds on a kill -9 costs
    only a few points of the throughput plot. A write failure never stops the job.
    """

    def __init__(
        self,
        storage: Any,
        attempt: str,
        *,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        flush_every_s: float = 30.0,
    ) -> None:
        self.storage = storage
        self.key = events_key(attempt)
        self.wall = wall
        self.clock = clock
        self.flush_every_s = flush_every_s
        self.records: list[dict[str, Any]] = []
        self.last_flush = clock()
        self.dirty = False

    def record(self, event: str, **fields: Any) -> None:
        self.records.append({"event": event, "time": round(self.wall(), 3), **fields})
        self.dirty = True
        if self.clock() - self.last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        if not self.dirty:
            return
        blob = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in self.records)
        try:
            self.storage.write_bytes(self.key, blob.encode())
        except Exception as err:  # events are a convenience; the job goes on without them
            log_event("events-not-written", key=self.key, error=str(err)[:200])
        self.last_flush = self.clock()
        self.dirty = False


def read_events(storage: Any) -> list[dict[str, Any]]:
    """Every recorded event of a store, oldest first (attempts in time order)."""
    out: list[dict[str, Any]] = []
    for key in storage.list(EVENTS_DIR):
        if not key.endswith(EVENTS_SUFFIX):
            continue
        for line in storage.read_bytes(key).decode(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("time"), int | float):
                out.append(row)
    out.sort(key=lambda r: r["time"])
    return out


class Progress:
    """Units of one slice: a bar with rows, tokens/s and ETA, or ``unit-committed`` events."""

    def __init__(
        self,
        *,
        units_total: int,
        units_done: int,
        enabled: bool,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interactive: bool | None = None,
        recorder: EventRecorder | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = is_human(self.stream) if interactive is None else interactive
        self.clock = clock
        self.start = clock()
        self.units_total = units_total
        self.units_done = units_done
        self.units_at_start = units_done
        self.tasks = 0
        self.tokens = 0
        self.recorder = recorder
        self.per_unit: dict[int, dict[str, int]] = {}
        self.seen_real = 0
        self.seen_padded = 0
        self.bar: Any = None
        if enabled and self.interactive:
            self.bar = _bar(units_total, units_done, "units", "run ", self.stream, eta=False)

    def add_tokens(
        self,
        tasks: int,
        tokens: int,
        *,
        unit: int | None = None,
        real_total: int | None = None,
        padded_total: int | None = None,
    ) -> None:
        """A unit's sequences are computed. ``real_total``/``padded_total`` are the job's
        running counts of real and padded batch tokens; their growth is this unit's."""
        self.tasks += tasks
        self.tokens += tokens
        if unit is not None and real_total is not None and padded_total is not None:
            self.per_unit[unit] = {
                "tokensReal": real_total - self.seen_real,
                "tokensPadded": padded_total - self.seen_padded,
            }
            self.seen_real, self.seen_padded = real_total, padded_total

    def unit_committed(self, unit: int, **fields: Any) -> None:
        self.units_done += 1
        if not self.enabled:
            return
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.tokens / elapsed
        done_here = self.units_done - self.units_at_start
        left = self.units_total - self.units_done
        eta = elapsed / done_here * left if done_here else float("nan")
        event = {
            "unit": unit,
            "unitsCommitted": self.units_done,
            "unitsTotal": self.units_total,
            "tasks": self.tasks,
            "tokens": self.tokens,
            "tokensPerSec": round(rate, 1),
            "etaSeconds": None if eta != eta else round(eta, 1),
            **self.per_unit.pop(unit, {}),
            **fields,
        }
        if self.recorder is not None:
            self.recorder.record("unit-committed", **event)
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"{self.tasks} tasks  {rate:,.0f} tok/s  ETA {fmt_eta(eta)}", refresh=False
            )
            self.bar.update(1)
            self.bar.refresh()
            if left <= 0:
                self.close()
        else:
            log_event("unit-committed", self.stream, **event)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.recorder is not None:
            self.recorder.flush()


class Tracker:
    """Progress of a loop outside the runner (prepare, verify, export-saelens).

    On a terminal: a tqdm bar (rows or units, tokens/s when tokens are counted, ETA when
    the total is known). Otherwise one ``<name>-progress`` JSON event every
    ``every_s`` seconds and a last one at the end.
    """

    def __init__(
        self,
        name: str,
        *,
        total: int | None,
        unit: str,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 10.0,
        interactive: bool | None = None,
    ) -> None:
        self.name = name
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.clock = clock
        self.every_s = every_s
        self.start = self.last = clock()
        self.n = 0
        self.tokens = 0
        self.fields: dict[str, Any] = {}
        human = is_human(self.stream) if interactive is None else interactive
        self.bar: Any = (
            _bar(total or 0, 0, unit, f"{name} ", self.stream, eta=True) if human else None
        )
        if self.bar is not None and total is None:
            self.bar.total = None

    def update(
        self, n: int = 1, *, tokens: int = 0, total: int | None = None, **fields: Any
    ) -> None:
        self.n += n
        self.tokens += tokens
        self.fields.update(fields)
        if total is not None and total != self.total:  # learned once the work is listed
            self.total = total
            if self.bar is not None:
                self.bar.total = total
        if self.bar is not None:
            if self.tokens:
                rate = self.tokens / max(self.clock() - self.start, 1e-9)
                self.bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)
            self.bar.update(n)
        elif self.clock() - self.last >= self.every_s:
            self._event(**fields)

    def _event(self, **fields: Any) -> None:
        self.last = self.clock()
        elapsed = max(self.last - self.start, 1e-9)
        eta = (self.total - self.n) * elapsed / self.n if self.total and self.n else None
        out: dict[str, Any] = {
            self.unit: self.n,
            "seconds": round(elapsed, 1),
            **self.fields,
            **fields,
        }
        if self.total is not None:
            out[f"{self.unit}Total"] = self.total
            out["etaSeconds"] = None if eta is None else round(eta, 1)
        if self.tokens:
            out["tokens"] = self.tokens
            out["tokensPerSec"] = round(self.tokens / elapsed, 1)
        log_event(f"{self.name}-progress", self.stream, **out)

    def close(self, **fields: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        else:
            self._event(**fields)


@contextmanager
def tracked(name: str, *, total: int | None, unit: str, **kw: Any) -> Iterator[Tracker]:
    tracker = Tracker(name, total=total, unit=unit, **kw)
    try:
        yield tracker
    finally:
        tracker.close()
