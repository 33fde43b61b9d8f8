"""Chaos: a 2-process run killed at random moments (SIGKILL and SIGTERM, some during a
commit) and restarted each time ends byte-identical to an uninterrupted run.

As a JobSet does, a failure of one pod restarts the whole slice: when one process is
SIGKILLed the other is killed too; on preemption every process gets SIGTERM. Kills during
a commit are aimed with the runner's "commit-start" log line and ARCX_COMMIT_PAUSE_S
(a pause between writing the parts and writing the marker, for fault-injection tests).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from arcx_store.backends.local import LocalStorage

from arcx.runner.verify import verify_store
from tests.runner import harness

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

KILLS = 10


def _kill_all(procs: list[subprocess.Popen[bytes]], sig: int, grace: float) -> list[int | None]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.05)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
    return [p.wait() for p in procs]


def _wait_for_count(
    log: Path, needle: str, count: int, procs: list[subprocess.Popen[bytes]], timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count(needle) >= count:
            return True
        if all(p.poll() is not None for p in procs):
            return False
        time.sleep(0.02)
    return False


CLEAN_STOP = (75, -signal.SIGTERM)  # PREEMPTED, or a SIGTERM that came before Python ran


def test_killed_and_restarted_run_is_byte_identical(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache
):
    """Each attempt makes at most one unit of progress, so the job survives >= 10 kills:
    - early SIGKILL / SIGTERM: at a random moment of the first seconds (startup, compile);
    - SIGKILL in a commit: one process at random, in the pause before the first marker;
    - SIGTERM in a commit: that unit still commits, then every process exits 75."""
    reference = harness.committed_files(run_store(2, 1))
    store = tmp_path / "store"
    cfg = harness.write_config(
        tmp_path / "job.yaml", model=tiny_model, tasks=arc_tasks, out=str(store)
    )
    env = harness.base_env(jax_cache, ARCX_COMMIT_PAUSE_S="0.5")
    rng = random.Random(1234)
    history: list[str] = []
    for attempt in range(KILLS):
        logs = tmp_path / f"attempt-{attempt}"
        procs = harness.start(cfg, 2, 1, env, logs)
        mode = ["early-kill", "commit-kill", "commit-term", "early-term"][attempt % 4]
        if mode.startswith("early"):
            time.sleep(rng.uniform(0.3, 4.0))
        elif not _wait_for_count(logs / "process-0.log", '"event": "commit-start"', 1, procs, 90):
            history.append(f"finished {[p.wait() for p in procs]}")
            break
        if mode == "commit-kill":
            time.sleep(rng.uniform(0.0, 0.3))
            victim = rng.randrange(2)
            procs[victim].send_signal(signal.SIGKILL)
            codes = _kill_all(procs, signal.SIGKILL, 0.3)
        elif mode == "early-kill":
            codes = _kill_all(procs, signal.SIGKILL, 0)
        else:
            codes = _kill_all(procs, signal.SIGTERM, 30)
            assert all(c in CLEAN_STOP for c in codes), (mode, codes, harness.logs(logs)[-3000:])
        history.append(f"{mode} {codes}")
    assert len(history) >= KILLS and all(not h.startswith("finished") for h in history[:KILLS]), (
        history
    )
    assert sum(h.startswith("commit-") for h in history) >= 4, history

    # the last restart runs to completion
    codes = harness.run(cfg, 2, 1, harness.base_env(jax_cache), tmp_path / "final")
    assert codes == [0, 0], harness.logs(tmp_path / "final")[-3000:]

    report = verify_store(LocalStorage(store))
    assert report.ok and not report.warnings, (report.problems, report.warnings)
    assert harness.committed_files(store) == reference, history
    seqs = harness.sequences(store)  # raises if a task was stored twice
    markers = [json.loads(p.read_text()) for p in harness.marker_paths(store)]
    assert len(seqs) + sum(len(m["skipped"]) for m in markers) == 8
    print("\n".join(history))
