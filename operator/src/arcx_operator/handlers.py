"""kopf handlers: one level-triggered reconcile run on create, update, resume and a timer.

Each pass reads the resource and what exists, creates what is missing (never changing a
running JobSet except its ``suspend``), and writes the status. Timers keep the status in
sync even when a watch stalls (kopf#1276).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf
from arcx_store.errors import StoreFormatError
from kubernetes.client.exceptions import ApiException

from arcx_operator import constants as c
from arcx_operator import podspec, render
from arcx_operator import status as st
from arcx_operator.constants import ConditionType, Phase
from arcx_operator.kube import Kube
from arcx_operator.observability import Health, Metrics
from arcx_operator.policy import Policy, check
from arcx_operator.progress import ProgressReader, StoreReadError
from arcx_operator.spec import Resource, SpecError, parse_resource

log = logging.getLogger("arcx_operator.handlers")

Body = dict[str, Any]


@dataclass
class Context:
    kube: Kube
    metrics: Metrics
    health: Health
    progress: ProgressReader
    default_image: str | None = None
    policy: Policy = field(default_factory=Policy)
    extra: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owned_by(obj: Body, uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


def reconcile(ctx: Context, body: Body) -> Body | None:
    """One pass for one resource; returns the new status, or None when nothing changed."""
    meta = body.get("metadata") or {}
    key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
    old = dict(body.get("status") or {})
    if old.get("phase") in c.TERMINAL_PHASES:
        ctx.metrics.set_phase(key, old["phase"])
        return None
    try:
        res = parse_resource(body)
    except SpecError as err:
        obs = st.refused(err.reason, str(err))
        new = st.next_status(
            old, obs, generation=int(meta.get("generation") or 0), jobset_name=None,
            progress=None, now=_now(),
        )  # fmt: skip
        return _report(ctx, body, key, old, new, obs)

    jobset: Body | None = None
    try:
        obs, jobset = _ensure(ctx, res)
    except SpecError as err:
        obs = st.refused(err.reason, str(err))
    jobset_name = c.jobset_name(res.name) if jobset is not None else None

    extra = [podspec.output_condition(res.spec, res.generation)]
    progress = plan = None
    if res.spec.output_uri and jobset is not None:
        progress, readable = _read_progress(ctx, res, obs)
        extra.append(readable)
        if progress is not None:
            plan = ctx.progress.plan(res.spec.output_uri)
    new = st.next_status(
        old,
        obs,
        generation=res.generation,
        jobset_name=jobset_name,
        progress=progress,
        plan=plan,
        now=_now(),
        extra_conditions=extra,
    )
    for cond in extra:
        _warn_once(body, old, cond)
    return _report(ctx, body, key, old, new, obs)


def _read_progress(ctx: Context, res: Resource, obs: st.Observed) -> tuple[Body | None, Body]:
    """The store's progress and condition StoreReadable; a store that cannot be read or is
    malformed is a False condition (and a Warning Event), never an exception."""
    uri = res.spec.output_uri
    try:
        # The last read before a terminal phase is fresh: the status is final after it.
        progress = ctx.progress.read(uri, force=obs.phase in c.TERMINAL_PHASES)
    except (StoreReadError, StoreFormatError, OSError, ValueError) as err:
        ctx.metrics.errors.labels(stage="progress").inc()
        log.warning("cannot read progress", extra={"job": res.key, "store": uri, "error": str(err)})
        reason = c.STORE_MALFORMED if _malformed(err) else c.STORE_UNREADABLE
        message = f"cannot read progress from {uri}: {err}"
        return None, st.condition(
            ConditionType.STORE_READABLE, False, reason.name, message, res.generation
        )
    ok = c.STORE_READ
    cond = st.condition(
        ConditionType.STORE_READABLE, True, ok.name, ok.text(uri=uri), res.generation
    )
    return dict(progress), cond


def _malformed(err: Exception) -> bool:
    # ValueError: bytes that are not UTF-8 or JSON, from a reader that does not wrap them.
    return isinstance(err, StoreFormatError | ValueError)


def _report(
    ctx: Context, body: Body, key: str, old: Body, new: Body, obs: st.Observed
) -> Body | None:
    ctx.metrics.set_phase(key, new["phase"])
    if st.transition(old.get("phase"), new["phase"]):
        kind = c.EventType.WARNING if new["phase"] == Phase.FAILED else c.EventType.NORMAL
        message = f"{new['phase']}: {obs.message}"[: c.MAX_EVENT_MESSAGE]
        kopf.event(body, type=kind.value, reason=obs.reason, message=message)
        log.info(
            "phase changed",
            extra={"job": key, "from": old.get("phase"), "to": new["phase"], "reason": obs.reason},
        )
    return None if new == old else new


def _warn_once(body: Body, old: Body, cond: Body) -> None:
    """A Warning Event when a condition turns False (not on every pass)."""
    before = next((x for x in old.get("conditions") or [] if x.get("type") == cond["type"]), None)
    if cond["status"] == "False" and (before or {}).get("status") != "False":
        message = cond["message"][: c.MAX_EVENT_MESSAGE]
        kopf.event(body, type=c.EventType.WARNING.value, reason=cond["reason"], message=message)


def _clash(kind: str, name: str) -> st.Observed:
    return st.refused(c.NAME_CLASH, c.NAME_CLASH.text(kind=kind, name=name))


def _ensure(ctx: Context, res: Resource) -> tuple[st.Observed, Body | None]:
    """Create what is missing (never touching what runs, but ``suspend``) and observe it.

    The policy is checked before anything is created; a JobSet that already runs is left
    to finish even if the policy changed since."""
    name = c.jobset_name(res.name)
    jobset = ctx.kube.get_jobset(res.namespace, name)
    if jobset is None:
        check(ctx.policy, res.spec)
    desired_cm = render.render_config_map(res)
    desired_js = render.render_jobset(res, ctx.default_image)
    cm = ctx.kube.ensure_config_map(desired_cm)
    if not _owned_by(cm, res.uid):
        return _clash("ConfigMap", desired_cm["metadata"]["name"]), None
    if jobset is None:
        jobset, created = ctx.kube.create_jobset(desired_js)
        if created:
            log.info("created JobSet", extra={"job": res.key, "jobset": name})
    if not _owned_by(jobset, res.uid):
        return _clash("JobSet", name), None
    _sync_suspend(ctx, res, jobset)
    message = None
    if st.true_condition(jobset, c.JobSetCondition.FAILED) is not None:
        message = ctx.kube.config_error_message(res.namespace, name)
    return st.observe(res.spec, jobset, failure_message=message), jobset


def _sync_suspend(ctx: Context, res: Resource, jobset: Body) -> None:
    """spec.suspend drives the JobSet's; with a Kueue queue, Kueue alone resumes it."""
    want = res.spec.suspend
    have = bool((jobset.get("spec") or {}).get("suspend", False))
    if want == have or (not want and res.spec.queue_name):
        return
    if st.true_condition(jobset, c.JobSetCondition.COMPLETED) or st.true_condition(
        jobset, c.JobSetCondition.FAILED
    ):
        return
    name = c.jobset_name(res.name)
    updated = ctx.kube.set_jobset_suspend(res.namespace, name, want)
    jobset.update(updated)


def _run(ctx: Context, body: kopf.Body, patch: kopf.Patch) -> None:
    try:
        new = reconcile(ctx, dict(body))
    except ApiException as err:
        ctx.metrics.reconciles.labels(result="error").inc()
        ctx.metrics.errors.labels(stage="api").inc()
        raise kopf.TemporaryError(
            f"Kubernetes API error {err.status}: {err.reason}", delay=5
        ) from err
    ctx.metrics.reconciles.labels(result="ok").inc()
    ctx.health.heartbeat()
    if new is not None:
        patch.status.update(new)


def install(registry: kopf.OperatorRegistry, ctx: Context, sync_interval_s: float) -> None:
    resource = (c.GROUP, c.VERSION, c.PLURAL)

    def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        _run(ctx, body, patch)

    def on_timer(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        _run(ctx, body, patch)

    def on_delete(body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata") or {}
        ctx.metrics.set_phase(f"{meta.get('namespace')}/{meta.get('name')}", None)
        uri = ((body.get("spec") or {}).get("output") or {}).get("uri")  # may not parse
        if uri:
            ctx.progress.forget(uri)

    async def heartbeat(**_: Any) -> None:
        async def beat() -> None:
            while True:
                ctx.health.heartbeat()
                await asyncio.sleep(10)

        ctx.extra["heartbeat"] = asyncio.create_task(beat())

    kopf.on.create(*resource, id="reconcile-create", registry=registry)(on_change)
    kopf.on.resume(*resource, id="reconcile-resume", registry=registry)(on_change)
    kopf.on.update(*resource, id="reconcile-update", registry=registry)(on_change)
    # The first tick waits one interval so the create handler acts first on a new resource.
    kopf.timer(
        *resource,
        id="sync",
        interval=sync_interval_s,
        initial_delay=sync_interval_s,
        sharp=False,
        registry=registry,
    )(on_timer)
    kopf.on.delete(*resource, id="forget", optional=True, registry=registry)(on_delete)
    kopf.on.startup(id="heartbeat", registry=registry)(heartbeat)
