"""The task store: sharded JSONL, challenges and solutions apart, and a small index.

Layout under the store's URI (a local path or ``gs://bucket/prefix``)::

    index.json                      written last: format, counts, fingerprint, shard list
    tasks/shard-00000.jsonl         one challenge a line: task_id, train pairs, test inputs, metadata
    solutions/shard-00000.jsonl     one line per task, same order: task_id, test outputs
    rejected.jsonl                  rows prepare refused: row number, origin, reason
    summary.json                    prepare's counts

A store is complete only when ``index.json`` exists. The fingerprint is the SHA-256 of
every challenge and solution line in order, so it names the content, not the sharding's
file names or the time it was written.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from arcx_store.backends import NotFound, Storage, open_storage

from arcx.tasks.grids import InvalidRecord
from arcx.tasks.task import Task, challenge_record, solution_record, task_from_records

FORMAT = "arcx-task-store"
FORMAT_VERSION = 1
INDEX_KEY = "index.json"
DEFAULT_SHARD_SIZE = 1000


class StoreError(Exception):
    """The store is missing, incomplete or inconsistent; the message says which file."""


class UnstorableTask(InvalidRecord):
    """A task whose record JSON cannot hold (e.g. metadata of a type JSON lacks)."""


def shard_keys(number: int) -> tuple[str, str]:
    return f"tasks/shard-{number:05d}.jsonl", f"solutions/shard-{number:05d}.jsonl"


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class TaskStoreWriter:
    """Appends tasks in order; holds at most one shard in memory; the index goes last."""

    def __init__(self, storage: Storage, shard_size: int = DEFAULT_SHARD_SIZE) -> None:
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        self.storage = storage
        self.shard_size = shard_size
        self._challenges: list[bytes] = []
        self._solutions: list[bytes] = []
        self._shards: list[dict[str, Any]] = []
        self._hash = hashlib.sha256()
        self.num_tasks = 0

    def add(self, task: Task) -> None:
        """Append ``task``; UnstorableTask (and no change) when its metadata is not JSON."""
        try:
            c, s = _line(challenge_record(task)), _line(solution_record(task))
        except (TypeError, ValueError, RecursionError) as err:
            why = "nested too deeply" if isinstance(err, RecursionError) else str(err)
            raise UnstorableTask(f"cannot be written as JSON: {why}") from None
        self._hash.update(c)
        self._hash.update(s)
        self._challenges.append(c)
        self._solutions.append(s)
        self.num_tasks += 1
        if len(self._challenges) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        if not self._challenges:
            return
        tasks_key, solutions_key = shard_keys(len(self._shards))
        self.storage.write_bytes(tasks_key, b"".join(self._challenges))
        self.storage.write_bytes(solutions_key, b"".join(self._solutions))
        self._shards.append(
            {"tasks": tasks_key, "solutions": solutions_key, "num_tasks": len(self._challenges)}
        )
        self._challenges, self._solutions = [], []

    @property
    def fingerprint(self) -> str:
        return self._hash.hexdigest()

    def close(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the last shard and then the index; return the index."""
        self._flush()
        index = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "num_tasks": self.num_tasks,
            "fingerprint": self.fingerprint,
            "shards": self._shards,
            **(extra or {}),
        }
        self.storage.write_bytes(INDEX_KEY, json.dumps(index, indent=2).encode() + b"\n")
        return index


@dataclass(frozen=True)
class ShardInfo:
    tasks: str
    solutions: str
    num_tasks: int


class TaskStore:
    """A prepared task store, read shard by shard."""

    def __init__(self, storage: Storage, index: dict[str, Any]) -> None:
        self.storage = storage
        self.uri = storage.uri
        self.index = index
        try:
            self.shards = tuple(_shard_info(s) for s in index["shards"])
            self.num_tasks: int = _count(index["num_tasks"])
            self.fingerprint: str = str(index["fingerprint"])
        except (KeyError, TypeError, ValueError) as err:
            raise StoreError(
                f"{self.uri}/{INDEX_KEY} is damaged ({err!r}); prepare the store again"
            ) from None
        starts, total = [], 0
        for shard in self.shards:
            starts.append(total)
            total += shard.num_tasks
        if total != self.num_tasks:
            raise StoreError(
                f"{self.uri}/{INDEX_KEY}: shards hold {total} tasks but num_tasks is "
                f"{self.num_tasks}; prepare the store again"
            )
        self._starts = starts

    @classmethod
    def open(cls, uri: str) -> TaskStore:
        storage = open_storage(uri)
        try:
            raw = storage.read_bytes(INDEX_KEY)
        except NotFound:
            raise StoreError(
                f"{uri} is not a task store (no {INDEX_KEY}); create one with "
                f"`arcx prepare --source ... --out {uri}`"
            ) from None
        try:
            index = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise StoreError(f"{uri}/{INDEX_KEY} is not valid JSON: {err!r}") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise StoreError(f"{uri}/{INDEX_KEY} is not an {FORMAT} index")
        if index.get("version") != FORMAT_VERSION:
            raise StoreError(
                f"{uri}/{INDEX_KEY} has format version {index.get('version')}; this arcx reads "
                f"version {FORMAT_VERSION}: prepare the store again"
            )
        return cls(storage, index)

    def _read_lines(self, key: str) -> list[bytes]:
        try:
            return self.storage.read_bytes(key).splitlines()
        except NotFound:
            raise StoreError(f"{self.uri}/{key} is missing; prepare the store again") from None

    def _read_shard(self, number: int) -> list[Task]:
        shard = self.shards[number]
        challenges = self._read_lines(shard.tasks)
        solutions = self._read_lines(shard.solutions)
        if len(challenges) != shard.num_tasks or len(solutions) != shard.num_tasks:
            raise StoreError(
                f"{self.uri}: shard {number} should hold {shard.num_tasks} tasks but "
                f"{shard.tasks} has {len(challenges)} lines and {shard.solutions} has "
                f"{len(solutions)}; prepare the store again"
            )
        tasks = []
        for line, (c_line, s_line) in enumerate(zip(challenges, solutions, strict=True), start=1):
            try:
                c, s = json.loads(c_line), json.loads(s_line)
                if c["task_id"] != s["task_id"]:
                    raise StoreError(
                        f"{self.uri}: {shard.tasks} and {shard.solutions} disagree "
                        f"({c['task_id']} vs {s['task_id']}); prepare the store again"
                    )
                tasks.append(task_from_records(c, s))
            except (ValueError, KeyError, TypeError, IndexError, RecursionError) as err:
                # lists_to_grid and the joins index into what the lines hold
                raise StoreError(
                    f"{self.uri}: line {line} of {shard.tasks} or {shard.solutions} is damaged "
                    f"({type(err).__name__}: {err}); prepare the store again"
                ) from None
        return tasks

    def iter_tasks(self, start: int = 0, stop: int | None = None) -> Iterator[Task]:
        """Tasks ``start..stop-1`` in store order, test outputs joined; reads only their shards."""
        stop = self.num_tasks if stop is None else min(stop, self.num_tasks)
        start = max(0, start)
        if start >= stop:
            return
        first = bisect.bisect_right(self._starts, start) - 1
        for number in range(first, len(self.shards)):
            base = self._starts[number]
            if base >= stop:
                break
            for offset, task in enumerate(self._read_shard(number)):
                if start <= base + offset < stop:
                    yield task

    def __len__(self) -> int:
        return self.num_tasks


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def _shard_info(s: Any) -> ShardInfo:
    if not isinstance(s, dict) or not all(
        isinstance(s.get(k), str) for k in ("tasks", "solutions")
    ):
        raise ValueError(f"shard entry {s!r} needs 'tasks' and 'solutions' keys")
    return ShardInfo(s["tasks"], s["solutions"], _count(s.get("num_tasks")))
