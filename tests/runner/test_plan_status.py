"""The plan summary a real `arcx run` writes when it starts (plan.json), and the operator's
status built from it: priced from the first unit the runner built, so it agrees with that
unit's commit marker scaled to the dataset, and, for a job in one unit, with `arcx plan`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from arcx_store import layout
from arcx_store.plan import parse_plan

from arcx_operator import status as st
from arcx_operator.crd import plan_status_schema
from arcx_operator.progress import ProgressReader
from tests.runner import harness
from tests.runner.conftest import NUM_TASKS


def test_one_process_run_writes_its_plan_and_the_operator_shows_it(run_store) -> None:
    store = run_store(1, 1)  # unitSize 1: the plan is the first unit's, scaled by 8
    plan = parse_plan((store / layout.PLAN).read_bytes())
    first = json.loads(harness.marker_paths(store)[0].read_text())
    assert (plan.tasks, plan.tasksSampled, plan.units) == (NUM_TASKS, 1, NUM_TASKS)
    assert plan.sequences == NUM_TASKS * first["sequences"]
    assert plan.sequencesSkipped == NUM_TASKS * len(first["skipped"])
    assert plan.tokensKept == NUM_TASKS * first["tokens"]
    # positions "all": every token read is kept; batches are at least as long as their rows
    assert plan.tokens == plan.tokensKept and plan.paddedSlots >= plan.tokens
    assert plan.paddingFraction == pytest.approx(1 - plan.tokens / plan.paddedSlots, abs=1e-6)
    assert plan.flopsExecuted >= plan.flopsModel > 0
    assert plan.relativeError95 is None, "one sampled task has no spread to state"
    # 2 sites x 2 layers x 64 bf16 values per kept token, plus ids and annotations
    assert plan.bytesTotal > plan.tokensKept * 4 * 64 * 2

    reader = ProgressReader(min_interval_s=0)
    progress = reader.read(str(store))
    assert progress["unitsCommitted"] == NUM_TASKS
    shown = reader.plan(str(store))
    assert shown == plan.to_json()
    running = st.Observed(st.Phase.RUNNING, "Running", "", 0)
    status = st.next_status(
        {}, running, generation=1, jobset_name="j", progress=progress, now="t", plan=shown
    )
    assert status["plan"]["summary"].startswith(f"{NUM_TASKS} tasks (estimated from 1)")
    props = plan_status_schema()["properties"]
    assert set(status["plan"]) <= set(props), "every status field is in the CRD schema"


@pytest.mark.slow
def test_a_job_in_one_unit_writes_the_numbers_arcx_plan_prints(
    tmp_path: Path, tiny_model: Path, arc_tasks: Path, jax_cache: Path
) -> None:
    cfg = harness.write_config(
        tmp_path / "job.yaml",
        model=tiny_model,
        tasks=arc_tasks,
        out=str(tmp_path / "store"),
        output={"unitSize": NUM_TASKS},
    )
    codes = harness.run(cfg, 1, 1, harness.base_env(jax_cache), tmp_path / "logs")
    assert codes == [0], harness.logs(tmp_path / "logs")[-3000:]
    written = parse_plan((tmp_path / "store" / layout.PLAN).read_bytes())
    cli = [sys.executable, "-m", "arcx.cli", "--log-format", "json", "plan"]
    res = subprocess.run(
        [*cli, "--config", str(cfg), "--chips", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    planned = json.loads(res.stdout)
    assert not planned["sampled"] and written.tasksSampled == written.tasks == NUM_TASKS
    for ours, theirs in [
        ("tasks", "tasks"),
        ("sequences", "sequences"),
        ("sequencesSkipped", "sequences_skipped"),
        ("tokens", "tokens"),
        ("tokensKept", "tokens_kept"),
        ("paddedSlots", "padded_slots"),
        ("units", "units"),
        ("bytesTotal", "bytes_total"),
    ]:
        assert getattr(written, ours) == planned[theirs], ours
    assert written.sequencesSkipped > 0
    assert written.paddingFraction == pytest.approx(planned["padding_fraction"], abs=1e-6)
    assert written.flopsModel == pytest.approx(planned["flops_model"], rel=1e-12)
    assert written.flopsExecuted == pytest.approx(planned["flops_executed"], rel=1e-12)
    assert written.relativeError95 == 0.0
