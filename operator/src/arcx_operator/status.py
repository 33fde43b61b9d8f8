"""From a JobSet (or its absence) and the store's progress to the ArcExtractionJob status.

Pure: callers pass the current time and what they read; nothing here talks to the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arcx_operator import constants as c
from arcx_operator.constants import Phase
from arcx_operator.spec import JobSpec

Body = dict[str, Any]


@dataclass(frozen=True)
class Observed:
    """What the operator saw on one pass, reduced to what status depends on."""

    phase: Phase
    reason: str
    message: str
    restarts: int


def observed(phase: Phase, reason: c.Reason, count: int = 0, **values: object) -> Observed:
    """An observation whose message is the reason's own (``values`` fill its placeholders);
    ``count`` is the JobSet's restarts."""
    return Observed(phase, reason.name, reason.text(**values), count)


def true_condition(jobset: Body, type_: c.JobSetCondition) -> Body | None:
    """The JobSet's condition of this type when its status is True."""
    for cond in (jobset.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def refused(reason: c.Reason, message: str) -> Observed:
    """The resource cannot run as written (invalid spec, policy, a name clash)."""
    return Observed(Phase.FAILED, reason.name, message, 0)


def observe(
    spec: JobSpec | None,
    jobset: Body | None,
    failure_message: str | None = None,
) -> Observed:
    """Map the JobSet's conditions and replica counts onto a phase with reason and message.

    ``failure_message`` is the failed pod's termination message when one exited with the
    configuration-error code; it replaces the JobSet's generic message.
    """
    if jobset is None or spec is None:
        return observed(Phase.PENDING, c.CREATING)
    status = jobset.get("status") or {}
    restarts = int(status.get("restarts") or 0)
    if (done := true_condition(jobset, c.JobSetCondition.COMPLETED)) is not None:
        message = done.get("message") or c.COMPLETED.message
        return Observed(Phase.SUCCEEDED, c.COMPLETED.name, message, restarts)
    if (failed := true_condition(jobset, c.JobSetCondition.FAILED)) is not None:
        if failure_message:
            return Observed(Phase.FAILED, c.CONFIG_ERROR.name, failure_message, restarts)
        reason = failed.get("reason") or c.JOBSET_FAILED.name
        message = failed.get("message") or c.JOBSET_FAILED.message
        return Observed(Phase.FAILED, reason, message, restarts)
    suspended = (
        bool((jobset.get("spec") or {}).get("suspend"))
        or true_condition(jobset, c.JobSetCondition.SUSPENDED) is not None
    )
    if suspended:
        if spec.suspend:
            return observed(Phase.SUSPENDED, c.SUSPENDED_BY_SPEC, restarts)
        if spec.queue_name:
            return observed(Phase.PENDING, c.QUEUED, restarts, queue=spec.queue_name)
        return observed(Phase.SUSPENDED, c.SUSPENDED_JOBSET, restarts)
    rjobs = status.get("replicatedJobsStatus") or []
    ready = sum(int(r.get("ready") or 0) + int(r.get("succeeded") or 0) for r in rjobs)
    if ready > 0:
        return observed(Phase.RUNNING, c.RUNNING, restarts, ready=ready)
    if restarts > 0:
        # It ran before: the JobSet is recreating its Jobs; still Running, not Pending.
        return observed(Phase.RUNNING, c.RESTARTING, restarts, restarts=restarts)
    return observed(Phase.PENDING, c.PODS_PENDING, restarts)


def merge_conditions(old: list[Body], new: list[Body], now: str) -> list[Body]:
    """Standard condition semantics: lastTransitionTime changes only when status changes."""
    by_type = {c["type"]: c for c in old or []}
    merged = []
    for cond in new:
        prev = by_type.get(cond["type"])
        since = prev["lastTransitionTime"] if prev and prev.get("status") == cond["status"] else now
        merged.append({**cond, "lastTransitionTime": since})
    return merged


def condition(type_: c.ConditionType, ok: bool, reason: str, message: str, generation: int) -> Body:
    return {
        "type": type_.value,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def conditions_for(obs: Observed, created: bool, generation: int) -> list[Body]:
    conds = [
        condition(
            c.ConditionType.CREATED,
            created,
            c.JOBSET_CREATED.name if created else obs.reason,
            c.JOBSET_CREATED.message if created else obs.message,
            generation,
        )
    ]
    for phase, type_ in c.PHASE_CONDITIONS.items():
        active = obs.phase == phase
        reason = obs.reason if active else c.NOT_PREFIX + phase.value
        conds.append(condition(type_, active, reason, obs.message if active else "", generation))
    return conds


def progress_summary(progress: Body | None) -> str:
    if not progress or not progress.get("unitsTotal"):
        return ""
    return f"{progress.get('unitsCommitted', 0)}/{progress['unitsTotal']}"


def plan_summary(plan: Body) -> str:
    """One line for people, e.g. ``8 tasks (estimated from 1), 6 sequences (2 skipped),
    5,120 tokens kept, padding 12.0%, 3.1e+12 FLOPs, 12.4 MB``."""
    tasks, sampled = plan.get("tasks", 0), plan.get("tasksSampled", 0)
    basis = f" (estimated from {sampled})" if sampled < tasks else ""
    return (
        f"{tasks} tasks{basis}, {plan.get('sequences', 0)} sequences "
        f"({plan.get('sequencesSkipped', 0)} skipped), {plan.get('tokensKept', 0):,} tokens "
        f"kept, padding {plan.get('paddingFraction', 0):.1%}, "
        f"{plan.get('flopsExecuted', 0):.3g} FLOPs, {plan.get('bytesTotal', 0) / 1e6:,.1f} MB"
    )


def next_status(
    old: Body,
    obs: Observed,
    *,
    generation: int,
    jobset_name: str | None,
    progress: Body | None,
    now: str,
    extra_conditions: list[Body] | None = None,
    plan: Body | None = None,
) -> Body:
    """The full status to write; keeps start/completion times and restarts monotone.

    ``extra_conditions`` (e.g. ``OutputMounted``) follow the phase conditions; ``plan`` is
    the runner's plan summary (arcx_store.plan), kept once seen."""
    old = old or {}
    status: Body = {
        "phase": obs.phase.value,
        "observedGeneration": generation,
        "restarts": max(obs.restarts, int(old.get("restarts") or 0)),
        "conditions": merge_conditions(
            old.get("conditions") or [],
            conditions_for(obs, jobset_name is not None, generation) + (extra_conditions or []),
            now,
        ),
    }
    if jobset_name is not None:
        status["jobSetName"] = jobset_name
    prog = progress if progress is not None else old.get("progress")
    if prog:
        status["progress"] = {**prog, "summary": progress_summary(prog)}
    plan = plan if plan is not None else old.get("plan")
    if plan:
        status["plan"] = {**plan, "summary": plan_summary(plan)}
    if old.get("startTime"):
        status["startTime"] = old["startTime"]
    elif obs.phase == Phase.RUNNING or (obs.phase in c.TERMINAL_PHASES and jobset_name is not None):
        status["startTime"] = now
    if old.get("completionTime"):
        status["completionTime"] = old["completionTime"]
    elif obs.phase in c.TERMINAL_PHASES:
        status["completionTime"] = now
    return status


def transition(old_phase: str | None, new_phase: str) -> bool:
    return old_phase != new_phase
