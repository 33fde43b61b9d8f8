"""JobSet state -> ArcExtractionJob phase, conditions, restarts and times (pure functions)."""

from __future__ import annotations

from typing import Any

from arcx_operator import constants as c
from arcx_operator import status as st
from arcx_operator.spec import CpuTopology, JobSpec

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", "2026-01-01T01:00:00Z"


def jobset(
    *conditions: tuple[str, str, str],
    restarts: int = 0,
    suspend: bool = False,
    ready: int = 0,
    succeeded: int = 0,
) -> dict[str, Any]:
    return {
        "spec": {"suspend": suspend},
        "status": {
            "restarts": restarts,
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions
            ],
            "replicatedJobsStatus": [
                {
                    "name": "slice",
                    "ready": ready,
                    "succeeded": succeeded,
                    "failed": 0,
                    "active": ready,
                    "suspended": 0,
                }
            ],
        },
    }


def spec(**fields: Any) -> JobSpec:
    return JobSpec(sections={}, topology=CpuTopology(), **fields)


SPEC = spec()


def test_no_jobset_yet_is_pending() -> None:
    obs = st.observe(SPEC, None)
    assert (obs.phase, obs.reason) == ("Pending", "Creating")


def test_pods_not_ready_is_pending_then_running() -> None:
    assert st.observe(SPEC, jobset()).phase == "Pending"
    obs = st.observe(SPEC, jobset(ready=1, restarts=2))
    assert (obs.phase, obs.restarts) == ("Running", 2)


def test_a_restarting_jobset_stays_running() -> None:
    obs = st.observe(SPEC, jobset(restarts=1))
    assert (obs.phase, obs.reason, obs.restarts) == ("Running", "Restarting", 1)


def test_completed_is_succeeded() -> None:
    obs = st.observe(
        SPEC,
        jobset(("Completed", "AllJobsCompleted", "jobset completed successfully"), succeeded=2),
    )
    assert (obs.phase, obs.reason, obs.message) == (
        "Succeeded",
        "Completed",
        "jobset completed successfully",
    )


def test_failed_carries_the_jobset_reason() -> None:
    js = jobset(
        ("Failed", "FailedJobs", "jobset failed due to reaching max number of restarts"), restarts=3
    )
    obs = st.observe(SPEC, js)
    assert (obs.phase, obs.reason, obs.restarts) == ("Failed", "FailedJobs", 3)
    assert "max number of restarts" in obs.message


def test_config_error_uses_the_pod_termination_message() -> None:
    js = jobset(("Failed", "FailJobSetFailurePolicyRuleAction", "applying rule ConfigError"))
    msg = "invalid job configuration in /etc/arcx/job.yaml:\n  extraction.layers: layers must not repeat"
    obs = st.observe(SPEC, js, failure_message=msg)
    assert (obs.phase, obs.reason, obs.message) == ("Failed", "ConfigError", msg)


def test_render_error_fails_with_invalid_spec() -> None:
    obs = st.refused(c.INVALID_SPEC, "spec.image: no job image")
    assert (obs.phase, obs.reason, obs.message) == (
        "Failed",
        "InvalidSpec",
        "spec.image: no job image",
    )


def test_suspended_by_spec_vs_queued_in_kueue() -> None:
    assert st.observe(spec(suspend=True), jobset(suspend=True)).phase == "Suspended"
    queued = st.observe(spec(queue_name="tpu"), jobset(suspend=True))
    assert (queued.phase, queued.reason) == ("Pending", "Queued")
    assert "tpu" in queued.message
    # Suspended wins over queued when the user asked for it.
    assert (
        st.observe(spec(queue_name="tpu", suspend=True), jobset(suspend=True)).phase == "Suspended"
    )


def test_conditions_keep_transition_time_while_status_is_unchanged() -> None:
    running = st.observe(SPEC, jobset(ready=1))
    s1 = st.next_status({}, running, generation=1, jobset_name="j", progress=None, now=T0)
    s2 = st.next_status(s1, running, generation=1, jobset_name="j", progress=None, now=T1)
    assert s1 == s2
    done = st.observe(SPEC, jobset(("Completed", "AllJobsCompleted", "ok")))
    s3 = st.next_status(s2, done, generation=1, jobset_name="j", progress=None, now=T2)
    conds = {c["type"]: c for c in s3["conditions"]}
    assert conds["Succeeded"] == {
        "type": "Succeeded",
        "status": "True",
        "reason": "Completed",
        "message": "ok",
        "observedGeneration": 1,
        "lastTransitionTime": T2,
    }
    assert conds["Running"]["status"] == "False" and conds["Running"]["lastTransitionTime"] == T2
    assert conds["Created"]["lastTransitionTime"] == T0
    assert s3["startTime"] == T0 and s3["completionTime"] == T2
    assert sum(c["status"] == "True" for t, c in conds.items() if t != "Created") == 1


def test_every_condition_has_the_standard_fields() -> None:
    s = st.next_status(
        {}, st.observe(SPEC, None), generation=4, jobset_name=None, progress=None, now=T0
    )
    for cond in s["conditions"]:
        assert set(cond) == {
            "type",
            "status",
            "reason",
            "message",
            "lastTransitionTime",
            "observedGeneration",
        }
        assert cond["observedGeneration"] == 4 and cond["reason"]
    assert s["observedGeneration"] == 4 and s["phase"] == "Pending"
    assert "jobSetName" not in s and "startTime" not in s


def test_progress_and_summary() -> None:
    running = st.observe(SPEC, jobset(ready=1))
    prog = {"unitsTotal": 40, "unitsCommitted": 12, "tasksDone": 190, "tokens": 123456}
    s = st.next_status({}, running, generation=1, jobset_name="j", progress=prog, now=T0)
    assert s["progress"] == {**prog, "summary": "12/40"}
    # A failed progress read (None) keeps the last known progress.
    s2 = st.next_status(s, running, generation=1, jobset_name="j", progress=None, now=T1)
    assert s2["progress"] == s["progress"]


def test_restarts_never_go_down() -> None:
    running = st.observe(SPEC, jobset(ready=1, restarts=0))
    s = st.next_status(
        {"restarts": 3}, running, generation=1, jobset_name="j", progress=None, now=T0
    )
    assert s["restarts"] == 3


def test_transition_detects_phase_changes_only() -> None:
    assert st.transition(None, "Pending")
    assert st.transition("Pending", "Running")
    assert not st.transition("Running", "Running")


def test_plan_is_shown_with_a_summary_and_kept_once_seen() -> None:
    running = st.observe(SPEC, jobset(ready=1))
    plan = {
        "tasks": 400,
        "tasksSampled": 4,
        "sequences": 500,
        "sequencesSkipped": 100,
        "tokens": 600_000,
        "tokensKept": 550_000,
        "paddedSlots": 700_000,
        "units": 100,
        "bytesTotal": 12_345_678,
        "paddingFraction": 0.142857,
        "flopsModel": 3.0e12,
        "flopsExecuted": 3.5e12,
        "relativeError95": 0.2,
    }
    s = st.next_status({}, running, generation=1, jobset_name="j", progress=None, now=T0, plan=plan)
    assert s["plan"] == {
        **plan,
        "summary": "400 tasks (estimated from 4), 500 sequences (100 skipped), 550,000 tokens "
        "kept, padding 14.3%, 3.5e+12 FLOPs, 12.3 MB",
    }
    s2 = st.next_status(s, running, generation=1, jobset_name="j", progress=None, now=T1)
    assert s2["plan"] == s["plan"]
    assert "plan" not in st.next_status(
        {}, running, generation=1, jobset_name="j", progress=None, now=T0
    )
