"""Polling with a deadline, for tests and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 60, interval: float = 0.5
) -> T:
    """Poll ``fn`` until it returns something truthy; raise AssertionError naming ``what``
    and the last value seen when ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last  # type: ignore[return-value]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
