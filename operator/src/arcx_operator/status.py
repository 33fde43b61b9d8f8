"""From a JobSet (or its absence) and the store's progress to the ArcExtractionJob status.

Pure: callers pass the current time and what they read; nothing here talks to the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Body = dict[str, Any]

PENDING, RUNNING, SUCCEEDED, FAILED, SUSPENDED = (
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Suspended",
)
PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, SUSPENDED)
TERMINAL = (SUCCEEDED, FAILED)

# Condition types on the resource; exactly one of the phase conditions is True at a time.
COND_CREATED = "Created"
PHASE_CONDITIONS = {
    RUNNING: "Running",
    SUCCEEDED: "Succeeded",
    FAILED: "Failed",
    SUSPENDED: "Suspended",
}

REASON_CONFIG_ERROR = "ConfigError"


@dataclass(frozen=True)
class Observed:
    """What the operator saw on one pass, reduced to what status depends on."""

    phase: str
    reason: str
    message: str
    restarts: int


def true_condition(jobset: Body, type_: str) -> Body | None:
    """The JobSet's condition of this type when its status is True."""
    for cond in (jobset.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def observe(
    spec: Body,
    jobset: Body | None,
    failure_message: str | None = None,
    render_error: str | None = None,
) -> Observed:
    """Map the JobSet's conditions and replica counts onto a phase with reason and message.

    ``failure_message`` is the failed pod's termination message when one exited with the
    configuration-error code; it replaces the JobSet's generic message.
    """
    if render_error is not None:
        return Observed(FAILED, "InvalidSpec", render_error, 0)
    if jobset is None:
        return Observed(PENDING, "Creating", "creating the ConfigMap and JobSet", 0)
    status = jobset.get("status") or {}
    restarts = int(status.get("restarts") or 0)
    if (done := true_condition(jobset, "Completed")) is not None:
        return Observed(
            SUCCEEDED, "Completed", done.get("message") or "all slices finished", restarts
        )
    if (failed := true_condition(jobset, "Failed")) is not None:
        if failure_message:
            return Observed(FAILED, REASON_CONFIG_ERROR, failure_message, restarts)
        reason = failed.get("reason") or "JobSetFailed"
        return Observed(FAILED, reason, failed.get("message") or "the JobSet failed", restarts)
    suspended = (
        bool((jobset.get("spec") or {}).get("suspend"))
        or true_condition(jobset, "Suspended") is not None
    )
    if suspended:
        if spec.get("suspend"):
            return Observed(SUSPENDED, "Suspended", "suspended by spec.suspend", restarts)
        if spec.get("queueName"):
            return Observed(
                PENDING,
                "Queued",
                f"waiting for admission by Kueue queue {spec['queueName']}",
                restarts,
            )
        return Observed(SUSPENDED, "Suspended", "the JobSet is suspended", restarts)
    rjobs = status.get("replicatedJobsStatus") or []
    ready = sum(int(r.get("ready") or 0) + int(r.get("succeeded") or 0) for r in rjobs)
    if ready > 0:
        return Observed(RUNNING, "Running", f"{ready} slice(s) running or done", restarts)
    if restarts > 0:
        # It ran before: the JobSet is recreating its Jobs; still Running, not Pending.
        return Observed(
            RUNNING, "Restarting", f"restart {restarts}: waiting for the pods", restarts
        )
    return Observed(
        PENDING, "PodsPending", "waiting for the pods of every slice to start", restarts
    )


def merge_conditions(old: list[Body], new: list[Body], now: str) -> list[Body]:
    """Standard condition semantics: lastTransitionTime changes only when status changes."""
    by_type = {c["type"]: c for c in old or []}
    merged = []
    for cond in new:
        prev = by_type.get(cond["type"])
        since = prev["lastTransitionTime"] if prev and prev.get("status") == cond["status"] else now
        merged.append({**cond, "lastTransitionTime": since})
    return merged


def conditions_for(obs: Observed, created: bool, generation: int) -> list[Body]:
    conds = [
        {
            "type": COND_CREATED,
            "status": "True" if created else "False",
            "reason": "JobSetCreated" if created else obs.reason,
            "message": "ConfigMap and JobSet exist" if created else obs.message,
            "observedGeneration": generation,
        }
    ]
    for phase, type_ in PHASE_CONDITIONS.items():
        active = obs.phase == phase
        conds.append(
            {
                "type": type_,
                "status": "True" if active else "False",
                "reason": obs.reason if active else "Not" + phase,
                "message": obs.message if active else "",
                "observedGeneration": generation,
            }
        )
    return conds


def progress_summary(progress: Body | None) -> str:
    if not progress or not progress.get("unitsTotal"):
        return ""
    return f"{progress.get('unitsCommitted', 0)}/{progress['unitsTotal']}"


def next_status(
    old: Body,
    obs: Observed,
    *,
    generation: int,
    jobset_name: str | None,
    progress: Body | None,
    now: str,
    extra_conditions: list[Body] | None = None,
) -> Body:
    """The full status to write; keeps start/completion times and restarts monotone.

    ``extra_conditions`` (e.g. ``OutputMounted``) follow the phase conditions."""
    old = old or {}
    status: Body = {
        "phase": obs.phase,
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
    if old.get("startTime"):
        status["startTime"] = old["startTime"]
    elif obs.phase == RUNNING or (obs.phase in TERMINAL and jobset_name is not None):
        status["startTime"] = now
    if old.get("completionTime"):
        status["completionTime"] = old["completionTime"]
    elif obs.phase in TERMINAL:
        status["completionTime"] = now
    return status


def transition(old_phase: str | None, new_phase: str) -> bool:
    return old_phase != new_phase
