"""Polling with a deadline, for tests and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    what: str,
    fn: Callable[[], T | None],
    timeout: float = 60,
    interval: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``fn`` until it returns something truthy; raise AssertionError naming ``what``,
    the last value seen and ``describe()`` (what else to look at) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last  # type: ignore[return-value]
        time.sleep(interval)
    extra = ""
    if describe is not None:
        try:
            extra = "\n" + describe()
        except Exception as e:
            extra = f"\n(diagnostics failed: {e})"
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}; last value: {last!r}{extra}"
    )
