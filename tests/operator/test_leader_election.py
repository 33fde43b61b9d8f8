"""The Lease rule: who may take or keep leadership, and when."""

from __future__ import annotations

import datetime as dt

from arcx_operator.leader import may_acquire

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def test_free_or_own_lease_can_be_taken() -> None:
    assert may_acquire(None, None, 15, "me", NOW)
    assert may_acquire("", NOW, 15, "me", NOW)
    assert may_acquire("me", NOW, 15, "me", NOW)


def test_another_holder_keeps_it_until_it_expires() -> None:
    renewed = NOW - dt.timedelta(seconds=14)
    assert not may_acquire("other", renewed, 15, "me", NOW)
    assert may_acquire("other", renewed, 15, "me", NOW + dt.timedelta(seconds=1))


def test_a_holder_that_never_renewed_is_replaced() -> None:
    assert may_acquire("other", None, 15, "me", NOW)
