"""prepare: read a source, validate and convert every row, drop duplicates, write a task store.

Memory stays bounded: records stream from the source one at a time, the writer holds one
shard, rejected rows are spooled to a temporary file, and only the 64-bit ids of the tasks
kept are remembered (for duplicate detection: about 100 bytes a task).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from arcx_store.backends import Storage, open_storage

from arcx.tasks.barc import DEFAULT_SPLIT, BarcSplit
from arcx.tasks.convert import record_to_task
from arcx.tasks.grids import InvalidRecord
from arcx.tasks.sources import RawRecord, iter_source
from arcx.tasks.store import DEFAULT_SHARD_SIZE, INDEX_KEY, TaskStoreWriter
from arcx.tasks.task import Task

REJECTED_KEY = "rejected.jsonl"
SUMMARY_KEY = "summary.json"


class PrepareError(Exception):
    """prepare cannot start or finish; the message says what to do."""


@dataclass(frozen=True)
class PrepareSummary:
    source: str
    out: str
    rows_read: int
    tasks_written: int
    rejected: int
    duplicates: int
    # Tasks of a challenges file that its solutions file does not name (kept, outputs unknown).
    missing_solutions: int
    shards: int
    fingerprint: str
    stopped_at_max_tasks: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clear_old_store(storage: Storage, overwrite: bool) -> None:
    if not storage.exists(INDEX_KEY):
        stale = storage.list("tasks/") + storage.list("solutions/")
        if stale and not overwrite:
            raise PrepareError(
                f"{storage.uri} holds task shards but no {INDEX_KEY} (an interrupted prepare?); "
                "pass --overwrite to replace them or choose another --out"
            )
        return
    if not overwrite:
        raise PrepareError(
            f"{storage.uri} already holds a task store; pass --overwrite to replace it "
            "or choose another --out"
        )
    storage.delete(INDEX_KEY)  # first, so a half-replaced store is never taken for whole


def prepare(
    source: str,
    out: str,
    *,
    solutions: str | None = None,
    max_tasks: int | None = None,
    seed: int = 0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    split: BarcSplit = DEFAULT_SPLIT,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    progress_every: int = 10_000,
) -> PrepareSummary:
    """Prepare ``source`` into the task store at ``out`` and return the counts."""
    if max_tasks is not None and max_tasks < 1:
        raise PrepareError("max_tasks must be >= 1")
    storage = open_storage(out)
    _clear_old_store(storage, overwrite)
    writer = TaskStoreWriter(storage, shard_size=shard_size)
    seen: set[int] = set()
    rows = rejected = duplicates = missing_solutions = 0
    stopped = False
    with tempfile.TemporaryFile() as rejected_file:
        for rec in iter_source(source, solutions=solutions):
            rows += 1
            task, reason = _convert(rec, source, seed=seed, split=split)
            if task is not None and int(task.task_id, 16) in seen:
                duplicates += 1
            elif task is not None:
                try:
                    writer.add(task)
                except InvalidRecord as err:  # UnstorableTask: nothing was added
                    reason = str(err)
                else:
                    seen.add(int(task.task_id, 16))
                    missing_solutions += rec.no_solution
            if reason is not None:
                rejected += 1
                rejected_file.write(_rejected_line(rec, reason))
            if progress is not None and rows % progress_every == 0:
                progress(rows, writer.num_tasks)
            if max_tasks is not None and writer.num_tasks >= max_tasks:
                stopped = True
                break
        rejected_file.seek(0)
        storage.write_bytes(REJECTED_KEY, rejected_file.read())
    summary_fields = {
        "rows_read": rows,
        "tasks_written": writer.num_tasks,
        "rejected": rejected,
        "duplicates": duplicates,
        "missing_solutions": missing_solutions,
        "stopped_at_max_tasks": stopped,
    }
    index = writer.close(
        {"prepare": {"source": source, "seed": seed, "barc_split": asdict(split), **summary_fields}}
    )
    _delete_stale_shards(
        storage, {k for s in index["shards"] for k in (s["tasks"], s["solutions"])}
    )
    summary = PrepareSummary(
        source=source,
        out=storage.uri,
        shards=len(index["shards"]),
        fingerprint=index["fingerprint"],
        **summary_fields,
    )
    storage.write_bytes(SUMMARY_KEY, json.dumps(summary.to_dict(), indent=2).encode() + b"\n")
    return summary


def _convert(
    rec: RawRecord, source: str, *, seed: int, split: BarcSplit
) -> tuple[Task | None, str | None]:
    """(task, None) or (None, why the row is rejected); never raises for a bad row."""
    if rec.error is not None:
        return None, rec.error
    meta: dict[str, Any] = {"source": source, "row": rec.row}
    if rec.source_id is not None:
        meta["source_id"] = rec.source_id
    try:
        return record_to_task(rec.value, meta, seed=seed, split=split), None
    except InvalidRecord as err:
        return None, str(err)
    except RecursionError:  # a value too deep for Python to walk
        return None, "nested too deeply to read (not an ARC record)"


def _rejected_line(rec: RawRecord, reason: str) -> bytes:
    line: dict[str, Any] = {"row": rec.row, "origin": rec.origin, "reason": reason}
    if rec.source_id is not None:
        line["source_id"] = rec.source_id
    return json.dumps(line).encode() + b"\n"


def _delete_stale_shards(storage: Storage, keep: set[str]) -> None:
    for key in storage.list("tasks/") + storage.list("solutions/"):
        if key not in keep:
            storage.delete(key)
