"""The storage contract, on the local filesystem and on a real GCS-protocol server.

The same behaviour is asked of both backends: atomic whole-object writes, create-only
with exactly one winner, recursive sorted listing, deletes that tolerate absence. The
GCS cases run google-cloud-storage against fake-gcs-server on loopback (tests marked
``gcs``), through the FaultProxy described in fake_gcs.py when faults are injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from arcx_store.backends import NotFound, StorageError, open_storage
from arcx_store.backends import gcs as gcs_mod
from arcx_store.backends.gcs import GCSStorage, parse_gs_uri
from arcx_store.backends.local import LocalStorage
from arcx_store.layout import marker_key

from tests.storage.fake_gcs import FaultProxy, free_port, gcs_with_proxy


@pytest.fixture(scope="module")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FaultProxy]]:
    with gcs_with_proxy(tmp_path_factory.mktemp("gcs")) as pair:
        yield pair


_bucket_counter = iter(range(10_000))


@pytest.fixture
def gcs_store(gcs_endpoint, monkeypatch) -> GCSStorage:
    endpoint, proxy = gcs_endpoint
    proxy.fail_next = proxy.drop_next = proxy.lose_next = 0
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    store = GCSStorage.from_uri(f"gs://b{next(_bucket_counter)}/runs/r1", retry_deadline=30)
    store._client.create_bucket(store.bucket_name)
    return store


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.gcs)])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    return request.getfixturevalue("gcs_store")


def test_write_read_size_exists_list_delete(store):
    store.write_bytes("units/000001/part-00000.safetensors", b"abc")
    store.write_bytes(marker_key(0), b"{}")
    store.write_bytes("manifest.json", b"m")
    assert store.read_bytes("units/000001/part-00000.safetensors") == b"abc"
    assert store.size("manifest.json") == 1
    assert store.exists("manifest.json") and not store.exists("nope")
    assert store.list() == [
        "manifest.json",
        marker_key(0),
        "units/000001/part-00000.safetensors",
    ]
    assert store.list("units/000001") == ["units/000001/part-00000.safetensors"]
    assert store.list("units/000009") == []
    store.write_bytes("manifest.json", b"m2")  # overwrite replaces
    assert store.read_bytes("manifest.json") == b"m2"
    store.delete("manifest.json")
    store.delete("manifest.json")  # absent is not an error
    with pytest.raises(NotFound):
        store.read_bytes("manifest.json")
    with pytest.raises(NotFound):
        store.size("manifest.json")


def test_create_only_has_exactly_one_winner(store):
    results: list[bool] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        won = store.create_only(marker_key(3), f"writer {i}".encode())
        with lock:
            results.append(won)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    assert store.read_bytes(marker_key(3)).startswith(b"writer ")
    assert store.create_only(marker_key(3), b"late") is False


def test_local_keys_cannot_escape_the_root(tmp_path):
    store = LocalStorage(tmp_path / "s")
    with pytest.raises(StorageError, match="escapes"):
        store.write_bytes("../outside", b"x")


def test_open_storage_picks_the_backend(tmp_path):
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert isinstance(open_storage(f"file://{tmp_path}"), LocalStorage)
    with pytest.raises(StorageError, match="unsupported storage URI"):
        open_storage("s3://bucket/x")
    assert parse_gs_uri("gs://bkt/a/b/") == ("bkt", "a/b")
    with pytest.raises(StorageError, match="no bucket"):
        parse_gs_uri("gs:///x")


@pytest.mark.gcs
def test_large_objects_go_up_resumable_and_come_back_whole(gcs_store, gcs_endpoint, monkeypatch):
    monkeypatch.setattr(gcs_mod, "RESUMABLE_CHUNK", 1024 * 1024)
    _, proxy = gcs_endpoint
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB: above the client's 8 MiB multipart limit
    before = proxy.requests
    proxy.drop_next = 0
    gcs_store.write_bytes("big.safetensors", data)
    assert proxy.requests - before >= 10  # initiate + 9 chunk PUTs, not one multipart POST
    assert gcs_store.read_bytes("big.safetensors") == data
    assert gcs_store.size("big.safetensors") == len(data)
    # a connection dropped in the middle of the chunks: the upload resumes and completes
    proxy.drop_put_number = 4
    flipped = data[::-1]
    stat = gcs_store.write_bytes("big.safetensors", flipped)
    assert proxy.injected[-1].startswith("drop PUT")
    assert gcs_store.read_bytes("big.safetensors") == flipped
    # the resumable upload's final response carries the checksum a marker records
    assert stat.crc32c and stat == gcs_store.stat("big.safetensors")


@pytest.mark.gcs
def test_retries_through_injected_503s_and_dropped_connections(gcs_store, gcs_endpoint):
    _, proxy = gcs_endpoint
    proxy.fail_next = 3
    gcs_store.write_bytes("a", b"one")
    proxy.drop_next = 2
    assert gcs_store.read_bytes("a") == b"one"
    proxy.fail_next = 2
    assert gcs_store.create_only("m", b"marker") is True
    proxy.drop_next = 1
    assert gcs_store.list() == ["a", "m"]
    assert [i.split()[0] for i in proxy.injected[-8:]].count("503") >= 5
    assert any(i.startswith("drop") for i in proxy.injected)


@pytest.mark.gcs
def test_create_only_whose_answer_was_lost_reports_false_with_our_bytes(gcs_store, gcs_endpoint):
    """The write landed but the client never heard; its retry meets the object (412).
    create_only says False and the bytes are ours: commit_unit treats that as success."""
    from arcx_store.markers import commit_unit

    _, proxy = gcs_endpoint
    proxy.lose_next = 1
    assert gcs_store.create_only("x", b"payload") is False
    assert gcs_store.read_bytes("x") == b"payload"
    proxy.lose_next = 1
    commit_unit(gcs_store, 7, b'{"unit": 7}')  # no exception: identical marker already there
    assert gcs_store.read_bytes(marker_key(7)) == b'{"unit": 7}'


@pytest.mark.gcs
def test_unreachable_store_fails_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    store = GCSStorage.from_uri("gs://nobody/home", retry_deadline=2)
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"unreachable|cannot"):
        store.check_reachable()
    assert time.monotonic() - started < 30


@pytest.mark.gcs
def test_missing_bucket_is_named(gcs_store, monkeypatch):
    store = GCSStorage.from_uri("gs://no-such-bucket/x", retry_deadline=5)
    with pytest.raises(StorageError, match="gs://no-such-bucket does not exist"):
        store.check_reachable()


def test_local_write_leaves_no_temporary_files(tmp_path: Path):
    store = LocalStorage(tmp_path)
    store.write_bytes("a/b", b"x")
    assert store.create_only("a/c", b"y")
    assert not store.create_only("a/c", b"z")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b", "c"]


def test_stat_and_listing_carry_the_backends_free_checksum(store):
    stat = store.write_bytes("units/000000/part-00000.safetensors", b"abc")
    assert stat.size == 3
    listed = store.list_stats("units")
    assert listed["units/000000/part-00000.safetensors"] == store.stat(
        "units/000000/part-00000.safetensors"
    )
    if isinstance(store, LocalStorage):
        assert stat.crc32c is None  # a filesystem has no checksum for free
    else:
        import base64

        import google_crc32c

        want = base64.b64encode(google_crc32c.Checksum(b"abc").digest()).decode()
        assert stat.crc32c == want and listed["units/000000/part-00000.safetensors"].crc32c == want


@pytest.mark.gcs
def test_a_same_size_change_on_gcs_is_caught_by_the_marker_crc32c(gcs_store):
    from arcx_store import layout
    from arcx_store.markers import FileInfo, build_marker, commit_unit
    from arcx_store.units import unit_states

    key = layout.part_key(0, 0)
    data = b"part bytes, as committed"
    info = FileInfo.of(key, data)
    assert gcs_store.write_bytes(key, data).crc32c == info.crc32c
    marker = build_marker(
        0, parts=[info], predictions=None, num_tasks=1, num_sequences=1, num_tokens=1, skipped=[]
    )
    commit_unit(gcs_store, 0, marker)
    assert unit_states(gcs_store, [0])[0].committed
    gcs_store.write_bytes(key, data.replace(b"part", b"PART"))  # same size, other bytes
    state = unit_states(gcs_store, [0])[0]
    assert state.damaged and "crc32c" in (state.problem or "")


def test_local_listing_shows_temporary_files(tmp_path: Path):
    store = LocalStorage(tmp_path)
    store.write_bytes("units/000000/part-00000.safetensors", b"x")
    (tmp_path / "units/000000/.part-00000.safetensors.abc.tmp").write_bytes(b"half")
    assert store.list("units") == [
        "units/000000/.part-00000.safetensors.abc.tmp",
        "units/000000/part-00000.safetensors",
    ]


def test_read_range_returns_the_bytes_asked_for_and_fewer_at_the_end(store):
    data = bytes(range(256)) * 8
    store.write_bytes("units/000000/part-00000.safetensors", data)
    key = "units/000000/part-00000.safetensors"
    assert store.read_range(key, 0, 8) == data[:8]
    assert store.read_range(key, 1000, 37) == data[1000:1037]
    assert store.read_range(key, len(data) - 5, 100) == data[-5:]  # clipped at the end
    assert store.read_range(key, len(data), 10) == b""  # past the end: nothing
    assert store.read_range(key, 3, 0) == b""
    with pytest.raises(ValueError, match="start >= 0"):
        store.read_range(key, -1, 4)
    with pytest.raises(NotFound):
        store.read_range("units/000000/missing.safetensors", 0, 4)


@pytest.mark.gcs
def test_gcs_read_range_fetches_only_the_range(gcs_store, gcs_endpoint):
    _, proxy = gcs_endpoint
    data = bytes(range(256)) * 4096  # 1 MiB
    gcs_store.write_bytes("big.bin", data)
    before = proxy.served
    assert gcs_store.read_range("big.bin", 500_000, 1000) == data[500_000:501_000]
    assert proxy.served - before < 8 * 1024  # the range, not the megabyte
    before = proxy.served
    assert gcs_store.read_bytes("big.bin") == data
    assert proxy.served - before >= len(data)  # the counter does see whole reads
