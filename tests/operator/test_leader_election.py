"""The Lease rule: who may take or keep leadership, and when."""

from __future__ import annotations

import datetime as dt
import socket
import threading

from kubernetes import client

from arcx_operator.leader import LeaderElector, leadership_lost, may_acquire

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


def test_leadership_is_lost_after_the_renew_deadline() -> None:
    assert not leadership_lost(NOW, NOW + dt.timedelta(seconds=9), 10)
    assert leadership_lost(NOW, NOW + dt.timedelta(seconds=10), 10)
    assert leadership_lost(None, NOW, 10)


def _unreachable_api() -> client.CoordinationV1Api:
    """A real client aimed at a loopback port nobody listens on: every call fails to connect."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = client.Configuration()
    cfg.host = f"https://127.0.0.1:{port}"
    cfg.verify_ssl = False
    cfg.retries = 0
    return client.CoordinationV1Api(client.ApiClient(cfg))


def test_an_unreachable_api_is_a_failed_attempt_not_a_crash() -> None:
    elector = LeaderElector(_unreachable_api(), "lease", "ns", "me", lease_duration_s=3)
    assert elector.try_acquire_or_renew() is False


def test_a_leader_that_cannot_renew_gives_up() -> None:
    elector = LeaderElector(
        _unreachable_api(), "lease", "ns", "me", lease_duration_s=3, retry_period_s=0.05
    )
    elector.is_leader.set()  # as if it had led until the API went away
    lost = threading.Event()
    thread = elector.start(on_acquired=lambda: None, on_lost=lost.set)
    assert lost.wait(10), "on_lost was not called"
    thread.join(5)
    assert not elector.is_leader.is_set() and not thread.is_alive()
