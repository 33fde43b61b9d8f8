"""Leader election on a coordination.k8s.io Lease, so two replicas never both act.

``may_acquire`` is the pure rule; ``LeaderElector`` runs it against the API in a thread:
it blocks until this process holds the Lease, renews it, and calls ``on_lost`` when a
renewal has not succeeded within the lease duration (the process then exits and the
Deployment restarts it as a follower).
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
        retry_period_s: float = 2.0,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.api = coordination_api
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_duration_s = lease_duration_s
        self.retry_period_s = retry_period_s
        self.clock = clock
        self.is_leader = threading.Event()
        self._stop = threading.Event()

    # -- one attempt -------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        now = self.clock()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                log.warning("cannot read lease %s/%s: %s", self.namespace, self.name, err.reason)
                return False
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
                self.api.create_namespaced_lease(self.namespace, body)
            except ApiException as err2:
                log.info(
                    "lease %s/%s taken by another replica (%s)",
                    self.namespace,
                    self.name,
                    err2.status,
                )
                return False
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
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as err:
            log.info("lease %s/%s update lost a race (%s)", self.namespace, self.name, err.status)
            return False
        return True

    # -- the loop ----------------------------------------------------------------------
    def run(self, on_acquired: Callable[[], None], on_lost: Callable[[], None]) -> None:
        last_ok: dt.datetime | None = None
        while not self._stop.is_set():
            ok = self.try_acquire_or_renew()
            now = self.clock()
            if ok:
                last_ok = now
                if not self.is_leader.is_set():
                    log.info("became leader", extra={"identity": self.identity, "lease": self.name})
                    self.is_leader.set()
                    on_acquired()
            elif self.is_leader.is_set() and (
                last_ok is None or now - last_ok >= dt.timedelta(seconds=self.lease_duration_s)
            ):
                log.error("lost leadership", extra={"identity": self.identity, "lease": self.name})
                self.is_leader.clear()
                on_lost()
                return
            self._stop.wait(self.retry_period_s)

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
