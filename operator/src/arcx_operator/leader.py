"""Leader election on a coordination.k8s.io Lease, so two replicas never both act.

``may_acquire`` and ``leadership_lost`` are the pure rules; ``LeaderElector`` runs them
against the API in a thread: it blocks until this process holds the Lease, renews it, and
calls ``on_lost`` when no renewal succeeded within the renew deadline (shorter than the
lease duration, so this replica stops before another may take over). Any error talking to
the API counts as a failed renewal; the thread never dies silently while leading.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("arcx_operator.leader")


def may_acquire(
    holder: str | None,
    renew_time: dt.datetime | None,
    duration_s: int,
    identity: str,
    now: dt.datetime,
) -> bool:
    """True if ``identity`` may take or keep the lease at ``now``."""
    if not holder or holder == identity or renew_time is None:
        return True
    return now >= renew_time + dt.timedelta(seconds=duration_s)


def leadership_lost(
    last_renewed: dt.datetime | None, now: dt.datetime, renew_deadline_s: float
) -> bool:
    """A leader whose last successful renewal is older than the deadline must stop acting."""
    return last_renewed is None or now - last_renewed >= dt.timedelta(seconds=renew_deadline_s)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(
        self,
        coordination_api: Any,
        name: str,
        namespace: str,
        identity: str,
        *,
        lease_duration_s: int = 15,
        renew_deadline_s: float | None = None,
        retry_period_s: float = 2.0,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.api = coordination_api
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s or lease_duration_s * 2 / 3
        self.retry_period_s = retry_period_s
        self.clock = clock
        self.is_leader = threading.Event()
        self._stop = threading.Event()
        # Every API call is bounded, so a hung connection cannot outlive the deadline.
        self._timeout = (min(5.0, self.renew_deadline_s / 2), max(1.0, self.renew_deadline_s / 2))

    # -- one attempt -------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One attempt; False on any failure (API error, network error, lease held)."""
        try:
            return self._attempt()
        except Exception as err:  # network errors surface as urllib3 exceptions, not ApiException
            log.warning("lease %s/%s: %s", self.namespace, self.name, err)
            return False

    def _attempt(self) -> bool:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        now = self.clock()
        try:
            lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as err:
            if err.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.lease_duration_s,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                self.api.create_namespaced_lease(
                    self.namespace, body, _request_timeout=self._timeout
                )
            except ApiException as err2:
                if err2.status == 409:
                    return False  # another replica created it first
                raise
            return True
        spec = lease.spec or client.V1LeaseSpec()
        duration = spec.lease_duration_seconds or self.lease_duration_s
        if not may_acquire(spec.holder_identity, spec.renew_time, duration, self.identity, now):
            return False
        if spec.holder_identity != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now
            spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_duration_s
        lease.spec = spec
        try:
            # resourceVersion in the body makes this a compare-and-swap.
            self.api.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=self._timeout
            )
        except ApiException as err:
            if err.status == 409:
                return False  # lost a race with another replica
            raise
        return True

    # -- the loop ----------------------------------------------------------------------
    def run(self, on_acquired: Callable[[], None], on_lost: Callable[[], None]) -> None:
        last_ok: dt.datetime | None = None
        try:
            while not self._stop.is_set():
                ok = self.try_acquire_or_renew()
                now = self.clock()
                if ok:
                    last_ok = now
                    if not self.is_leader.is_set():
                        log.info(
                            "became leader", extra={"identity": self.identity, "lease": self.name}
                        )
                        self.is_leader.set()
                        on_acquired()
                elif self.is_leader.is_set() and leadership_lost(
                    last_ok, now, self.renew_deadline_s
                ):
                    break
                self._stop.wait(self.retry_period_s)
        finally:
            if self.is_leader.is_set() and not self._stop.is_set():
                log.error("lost leadership", extra={"identity": self.identity, "lease": self.name})
                self.is_leader.clear()
                on_lost()

    def start(
        self, on_acquired: Callable[[], None], on_lost: Callable[[], None]
    ) -> threading.Thread:
        thread = threading.Thread(
            target=self.run, args=(on_acquired, on_lost), name="leader-election", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
