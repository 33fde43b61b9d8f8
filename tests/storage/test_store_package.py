"""The shared store package (arcx_store): the committed-unit rule, hostile manifests and
markers, keys that try to leave the store, the local backend's paths, modes and temporary
files, and the bounded safetensors header reader. Every case runs on a real filesystem."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from arcx_store import layout
from arcx_store.backends import BadStoreURI, ObjectStat, StorageError, open_storage
from arcx_store.backends.local import LocalStorage
from arcx_store.errors import StoreFormatError, StoreMismatch
from arcx_store.header import MAX_HEADER_BYTES, HeaderError, read_header, read_header_file
from arcx_store.manifest import parse_manifest
from arcx_store.markers import FileInfo, build_marker, commit_unit, parse_marker, remove_strays
from arcx_store.parts import RangedPart, encode_part, tensor_views
from arcx_store.units import judge_unit, unit_states


def _part(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_part(
        {
            "resid_post.0": rng.standard_normal((4, 8)).astype(np.float32),
            layout.TOKEN_IDS: np.arange(4, dtype=np.int32),
            layout.OFFSETS: np.array([0, 4], np.int64),
        },
        {"unit": str(seed)},
    )


def _commit(store: LocalStorage, unit: int, hosts: int = 2) -> list[FileInfo]:
    infos = []
    for h in range(hosts):
        data = _part(unit * 10 + h)
        key = layout.part_key(unit, h)
        store.write_bytes(key, data)
        infos.append(FileInfo.of(key, data))
    preds = b'{"correct": true}\n'
    pkey = layout.predictions_key(unit)
    store.write_bytes(pkey, preds)
    pred = FileInfo.of(pkey, preds)
    marker = build_marker(
        unit, parts=infos, predictions=pred, num_tasks=1, num_sequences=1, num_tokens=8, skipped=[]
    )
    commit_unit(store, unit, marker)
    return infos


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    s = LocalStorage(tmp_path / "store")
    for u in range(3):
        _commit(s, u)
    return s


def _path(store: LocalStorage, key: str) -> Path:
    return store.root / key


# -- the committed-unit rule ---------------------------------------------------------------


def test_intact_units_are_committed_and_absent_ones_are_not(store: LocalStorage) -> None:
    states = unit_states(store, [0, 1, 2, 3])
    assert [s.committed for s in states.values()] == [True, True, True, False]
    assert not states[3].damaged and not states[3].has_marker


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("truncate", "has 1"),  # bytes, the marker says ...
        ("delete", "is missing"),
        ("garbage-marker", "does not parse"),
        ("list-marker", "JSON list, not an object"),
        ("marker-missing-fields", "tasks"),
        ("marker-not-utf8", "not UTF-8"),
        ("predictions-truncated", "predictions/000001.jsonl has"),
    ],
)
def test_a_damaged_unit_is_not_committed_and_says_why(
    store: LocalStorage, damage: str, why: str
) -> None:
    part = _path(store, layout.part_key(1, 1))
    marker = _path(store, layout.marker_key(1))
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:1])
    elif damage == "delete":
        part.unlink()
    elif damage == "garbage-marker":
        marker.write_bytes(b"\x00garbage{")
    elif damage == "list-marker":
        marker.write_text("[1, 2, 3]")
    elif damage == "marker-missing-fields":
        m = json.loads(marker.read_text())
        del m["tasks"]
        marker.write_text(json.dumps(m))
    elif damage == "marker-not-utf8":
        marker.write_bytes(b'{"unit": "\xff"}')
    elif damage == "predictions-truncated":
        p = _path(store, layout.predictions_key(1))
        p.write_bytes(p.read_bytes()[:-2])
    states = unit_states(store, [0, 1, 2])
    assert states[0].committed and states[2].committed
    assert states[1].damaged and not states[1].committed
    assert why in (states[1].problem or ""), states[1].problem


def test_a_flipped_byte_needs_the_full_check_locally(store: LocalStorage) -> None:
    part = _path(store, layout.part_key(2, 0))
    raw = bytearray(part.read_bytes())
    raw[-3] ^= 0x01
    part.write_bytes(bytes(raw))
    assert unit_states(store, [2])[2].committed  # same size, no backend checksum locally
    full = unit_states(store, [2], full=True)[2]
    assert full.damaged and "sha256" in (full.problem or "")


def test_a_backend_checksum_in_the_marker_catches_a_flipped_byte_cheaply() -> None:
    # What GCS gives: the listing's crc32c differs from the one the marker recorded.
    info = FileInfo(layout.part_key(0, 0), 10, "0" * 64, crc32c="AAAAAA==")
    marker = build_marker(
        0, parts=[info], predictions=None, num_tasks=1, num_sequences=1, num_tokens=1, skipped=[]
    )
    good = {info.key: ObjectStat(10, "AAAAAA=="), layout.marker_key(0): ObjectStat(1)}
    bad = {info.key: ObjectStat(10, "BBBBBB=="), layout.marker_key(0): ObjectStat(1)}
    assert judge_unit(0, marker, good, "mem").committed
    state = judge_unit(0, marker, bad, "mem")
    assert state.damaged and "crc32c" in (state.problem or "")


@pytest.mark.parametrize(
    "key",
    ["../../x", "/etc/passwd", "units/000000/../../../x", "units/000001/part-00000.safetensors"],
)
def test_a_marker_naming_a_key_outside_its_unit_is_refused(key: str) -> None:
    marker = build_marker(
        0,
        parts=[FileInfo(key, 1, "0" * 64)],
        predictions=None,
        num_tasks=1,
        num_sequences=1,
        num_tokens=1,
        skipped=[],
    )
    with pytest.raises(StoreFormatError):
        parse_marker(marker, "mem", 0)


def test_predictions_must_be_the_units_own_file() -> None:
    marker = build_marker(
        0,
        parts=[],
        predictions=FileInfo("../../etc/passwd", 1, "0" * 64),
        num_tasks=0,
        num_sequences=0,
        num_tokens=0,
        skipped=[],
    )
    with pytest.raises(StoreFormatError, match=r"predictions|absolute|'\.\.'"):
        parse_marker(marker, "mem", 0)


# -- manifests -----------------------------------------------------------------------------

GOOD_MANIFEST = {"formatVersion": layout.FORMAT_VERSION, "plan": {"units": [[0, 1]]}}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"[1, 2]", "JSON list"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
        (json.dumps({"formatVersion": layout.FORMAT_VERSION}).encode(), "no unit plan"),
        (json.dumps({"formatVersion": "2", "plan": {"units": []}}).encode(), "formatVersion"),
        (
            json.dumps(
                {"formatVersion": layout.FORMAT_VERSION + 1, "plan": {"units": []}}
            ).encode(),
            "newer than this arcx reads.*upgrade arcx",
        ),
    ],
)
def test_malformed_manifests_are_one_clear_error(data: bytes, match: str) -> None:
    with pytest.raises(StoreFormatError, match=match) as err:
        parse_manifest(data, "gs://b/run")
    assert isinstance(err.value, StoreMismatch) and isinstance(err.value, StorageError)
    assert "\n" not in str(err.value)


def test_a_good_manifest_parses() -> None:
    assert parse_manifest(json.dumps(GOOD_MANIFEST).encode(), "x")["plan"]["units"] == [[0, 1]]


# -- the local backend ---------------------------------------------------------------------


def test_temporary_files_of_a_killed_writer_are_listed_and_removed(store: LocalStorage) -> None:
    leftover = f"{layout.unit_dir(0)}/.part-00000.safetensors.abc123{layout.TEMP_SUFFIX}"
    _path(store, leftover).write_bytes(b"half a part")
    assert leftover in store.list(layout.unit_dir(0))
    assert unit_states(store, [0])[0].strays == (leftover,)
    marker = parse_marker(store.read_bytes(layout.marker_key(0)), "x", 0)
    assert remove_strays(store, 0, marker) == [leftover]
    names = {p.name for p in _path(store, layout.unit_dir(0)).iterdir()}
    assert names == {layout.MARKER_NAME, layout.part_name(0), layout.part_name(1)}


def test_a_symlinked_root_works_and_keys_still_cannot_leave_it(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    store = LocalStorage(link)
    store.write_bytes("units/000000/x", b"1")
    assert (real / "units/000000/x").read_bytes() == b"1"
    assert store.list() == ["units/000000/x"] and store.read_bytes("units/000000/x") == b"1"
    assert store.uri == str(link)
    (tmp_path / "outside").write_bytes(b"secret")
    for key in ("../outside", "/etc/passwd", "units/../../outside"):
        with pytest.raises(StorageError, match="escapes"):
            store.read_bytes(key)
    # a symlink inside the store that points out of it is refused too
    (real / "escape").symlink_to(tmp_path / "outside")
    with pytest.raises(StorageError, match="escapes"):
        store.read_bytes("escape")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        store = LocalStorage(tmp_path / "s")
        store.write_bytes("a/b", b"x")
        assert store.create_only("a/c", b"y")
    finally:
        os.umask(old)
    for name in ("b", "c"):
        mode = (tmp_path / "s" / "a" / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~umask, f"{name}: {oct(mode)}"


@pytest.mark.parametrize("uri", ["", "   ", "s3://bucket/run", "file://", "gs://", "gs://b/../x"])
def test_unusable_store_uris_are_config_errors(uri: str) -> None:
    with pytest.raises(BadStoreURI):
        open_storage(uri)


# -- the safetensors header reader ---------------------------------------------------------


def test_the_header_reader_refuses_absurd_lengths_without_reading(tmp_path: Path) -> None:
    for n in (2**63, MAX_HEADER_BYTES + 1, 1000):
        data = struct.pack("<Q", n) + b"{}"
        with pytest.raises(HeaderError, match="header length"):
            read_header(data)
        path = tmp_path / "bad.safetensors"
        path.write_bytes(data)
        with path.open("rb") as f, pytest.raises(HeaderError):
            read_header_file(f, path.stat().st_size)


@pytest.mark.parametrize(
    "header",
    [b"[]", b'{"a": 1}', b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}'],
)
def test_the_header_reader_refuses_malformed_entries(header: bytes) -> None:
    with pytest.raises(HeaderError):
        read_header(struct.pack("<Q", len(header)) + header)


def test_tensor_views_refuse_offsets_that_do_not_match_the_shape() -> None:
    header = b'{"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}'
    data = struct.pack("<Q", len(header)) + header + b"\0" * 8
    with pytest.raises(HeaderError, match="data_offsets"):
        tensor_views(data)
    back, _ = tensor_views(_part(1))
    assert back["resid_post.0"].shape == (4, 8)


def test_the_model_loader_uses_the_bounded_reader(tmp_path: Path) -> None:
    from arcx.model.errors import ModelLoadError
    from arcx.model.params import SafetensorsReader

    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(ModelLoadError, match="header length"):
        SafetensorsReader([path])
    good = tmp_path / "good.safetensors"
    good.write_bytes(_part(3))
    assert SafetensorsReader([good]).get("resid_post.0").shape == (4, 8)


@pytest.mark.parametrize("key", ["../../secret", "/etc/hostname", "units/000000/../../../secret"])
def test_the_sae_reader_refuses_a_marker_that_leaves_the_store(
    tmp_path: Path, store: LocalStorage, key: str
) -> None:
    from arcx.sae.parts import SaeDataError, read_store

    (tmp_path / "secret").write_bytes(_part(9))  # a readable part, outside the store
    store.write_bytes(layout.MANIFEST, json.dumps(GOOD_MANIFEST).encode())
    assert len(read_store(store).parts) == 6
    marker = json.loads(store.read_bytes(layout.marker_key(1)))
    marker["parts"][0]["key"] = key
    _path(store, layout.marker_key(1)).write_text(json.dumps(marker))
    with pytest.raises(SaeDataError, match="unit 1"):
        read_store(store)


def test_a_ranged_part_reads_the_rows_asked_for_as_the_whole_decode_does(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    data = _part(3)
    key = layout.part_key(0, 0)
    store.write_bytes(key, data)
    whole, meta = tensor_views(data)
    part = RangedPart(store, key, len(data))
    assert part.metadata == meta and part.names == sorted(whole)
    name = layout.tensor_name("resid_post", 0)
    assert np.array_equal(part.read(name, 1, 3), whole[name][1:3])
    assert np.array_equal(part.read(layout.OFFSETS), whole[layout.OFFSETS])
    assert part.read(name, 2, 2).shape == (0, 8)


def test_a_ranged_part_shorter_than_its_marker_says_is_refused(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    data = _part(4)
    key = layout.part_key(0, 0)
    store.write_bytes(key, data[:-16])  # the last tensor's bytes cut short
    part = RangedPart(store, key, len(data))  # the marker's size: the header still fits
    last = max(part.names, key=lambda n: part.header[n]["data_offsets"][1])
    with pytest.raises(HeaderError, match="runs past the end"):
        part.read(last)
    with pytest.raises(HeaderError, match="header length"):
        RangedPart(store, key, 12)  # a size the header cannot fit in
