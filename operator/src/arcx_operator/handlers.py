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
from kubernetes.client.exceptions import ApiException

from arcx_operator import constants as c
from arcx_operator import render, storage
from arcx_operator import status as st
from arcx_operator.kube import Kube
from arcx_operator.observability import Health, Metrics
from arcx_operator.progress import ProgressReader, StoreReadError

log = logging.getLogger("arcx_operator.handlers")


@dataclass
class Context:
    kube: Kube
    metrics: Metrics
    health: Health
    progress: ProgressReader
    default_image: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


def reconcile(ctx: Context, body: dict[str, Any]) -> dict[str, Any] | None:
    """One pass for one resource; returns the new status, or None when nothing changed."""
    meta = body.get("metadata") or {}
    name, namespace, uid = meta["name"], meta.get("namespace") or "default", meta.get("uid", "")
    spec = body.get("spec") or {}
    old = dict(body.get("status") or {})
    generation = int(meta.get("generation") or 0)
    key = f"{namespace}/{name}"
    if old.get("phase") in st.TERMINAL:
        ctx.metrics.set_phase(key, old["phase"])
        return None

    jobset: dict[str, Any] | None = None
    try:
        desired_cm = render.render_config_map(body)
        desired_js = render.render_jobset(body, ctx.default_image)
    except render.RenderError as err:
        obs = st.observe(spec, None, render_error=str(err))
    else:
        obs, jobset = _ensure(ctx, spec, desired_cm, desired_js, uid, key)
    jobset_name = c.jobset_name(name) if jobset is not None else None

    progress = None
    uri = (spec.get("output") or {}).get("uri")
    if uri and jobset is not None:
        try:
            # The last read before a terminal phase is fresh: the status is final after it.
            progress = ctx.progress.read(uri, force=obs.phase in st.TERMINAL)
        except (StoreReadError, OSError, ValueError) as err:
            ctx.metrics.errors.labels(stage="progress").inc()
            log.warning("cannot read progress", extra={"job": key, "store": uri, "error": str(err)})

    mounted = storage.output_condition(spec, generation)
    new = st.next_status(
        old,
        obs,
        generation=generation,
        jobset_name=jobset_name,
        progress=progress,
        now=_now(),
        extra_conditions=[mounted],
    )
    _warn_once(body, old, mounted)
    ctx.metrics.set_phase(key, new["phase"])
    if st.transition(old.get("phase"), new["phase"]):
        kind = "Warning" if new["phase"] == st.FAILED else "Normal"
        kopf.event(
            body, type=kind, reason=obs.reason, message=f"{new['phase']}: {obs.message}"[:1024]
        )
        log.info(
            "phase changed",
            extra={"job": key, "from": old.get("phase"), "to": new["phase"], "reason": obs.reason},
        )
    return None if new == old else new


def _warn_once(body: dict[str, Any], old: dict[str, Any], cond: dict[str, Any]) -> None:
    """A Warning Event when a condition turns False (not on every pass)."""
    before = next((c for c in old.get("conditions") or [] if c.get("type") == cond["type"]), None)
    if cond["status"] == "False" and (before or {}).get("status") != "False":
        kopf.event(body, type="Warning", reason=cond["reason"], message=cond["message"][:1024])


def _clash(kind: str, name: str) -> str:
    return (
        f"a {kind} named {name} already exists and is not owned by this resource; "
        "delete it or rename the ArcExtractionJob"
    )


def _ensure(
    ctx: Context,
    spec: dict[str, Any],
    desired_cm: dict[str, Any],
    desired_js: dict[str, Any],
    uid: str,
    key: str,
) -> tuple[st.Observed, dict[str, Any] | None]:
    """Create what is missing (never touching what runs, but ``suspend``) and observe it."""
    meta = desired_js["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    cm = ctx.kube.ensure_config_map(desired_cm)
    if not _owned_by(cm, uid):
        return st.observe(
            spec, None, render_error=_clash("ConfigMap", desired_cm["metadata"]["name"])
        ), None
    jobset = ctx.kube.get_jobset(namespace, name)
    if jobset is None:
        jobset, created = ctx.kube.create_jobset(desired_js)
        if created:
            log.info("created JobSet", extra={"job": key, "jobset": name})
    if not _owned_by(jobset, uid):
        return st.observe(spec, None, render_error=_clash("JobSet", name)), None
    _sync_suspend(ctx, spec, jobset, namespace, name)
    message = None
    if st.true_condition(jobset, "Failed") is not None:
        message = ctx.kube.config_error_message(namespace, name)
    return st.observe(spec, jobset, failure_message=message), jobset


def _sync_suspend(
    ctx: Context, spec: dict[str, Any], jobset: dict[str, Any], ns: str, name: str
) -> None:
    """spec.suspend drives the JobSet's; with a Kueue queue, Kueue alone resumes it."""
    want = bool(spec.get("suspend", False))
    have = bool((jobset.get("spec") or {}).get("suspend", False))
    if want == have or (not want and spec.get("queueName")):
        return
    if st.true_condition(jobset, "Completed") or st.true_condition(jobset, "Failed"):
        return
    updated = ctx.kube.set_jobset_suspend(ns, name, want)
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
        uri = ((body.get("spec") or {}).get("output") or {}).get("uri")
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
