"""Commit markers: a unit is done only when ``units/<u>/COMMITTED`` exists and holds.

The marker is create-only JSON listing every part (and the predictions file) with its
size, sha256 and crc32c (the checksum GCS lists for free, so a resume can compare it). Host 0 writes it after
every host of the slice wrote its part (a barrier), so a marker never names a part that is
not there. No clocks inside: the same unit gives the same marker bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arcx_store import layout
from arcx_store.backends.base import Storage
from arcx_store.errors import NotFound, StorageError, StoreFormatError
from arcx_store.jsonfile import encode, is_count, parse_object
from arcx_store.manifest import check_format

_COUNTS = ("unit", "tasks", "sequences", "tokens")


@dataclass(frozen=True)
class FileInfo:
    key: str  # relative to the store root
    size: int
    sha256: str
    crc32c: str | None = None  # as GCS reports it; None in markers of format 1

    @classmethod
    def of(cls, key: str, data: bytes) -> FileInfo:
        from arcx_store.checksums import crc32c_b64, sha256_hex

        return cls(key, len(data), sha256_hex(data), crc32c_b64(data))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "size": self.size, "sha256": self.sha256}
        if self.crc32c is not None:
            out["crc32c"] = self.crc32c
        return out

    @classmethod
    def from_json(cls, value: Any, what: str) -> FileInfo:
        if not (
            isinstance(value, dict)
            and isinstance(value.get("key"), str)
            and is_count(value.get("size"))
            and isinstance(value.get("sha256"), str)
            and isinstance(value.get("crc32c", ""), str)
        ):
            raise StoreFormatError(f"{what}: a file entry needs key, size and sha256")
        why = layout.check_key(value["key"])
        if why is not None:
            raise StoreFormatError(f"{what}: file key {why}; a marker names only store keys")
        return cls(value["key"], value["size"], value["sha256"], value.get("crc32c"))


def build_marker(
    unit: int,
    *,
    parts: list[FileInfo],
    predictions: FileInfo | None,
    num_tasks: int,
    num_sequences: int,
    num_tokens: int,
    skipped: list[dict[str, Any]],
    redone: str | None = None,
) -> bytes:
    """The marker's bytes; ``redone`` says why an earlier commit of the unit was discarded."""
    marker: dict[str, Any] = {
        "formatVersion": layout.FORMAT_VERSION,
        "unit": unit,
        "parts": [p.to_json() for p in parts],
        "predictions": predictions.to_json() if predictions else None,
        "tasks": num_tasks,
        "sequences": num_sequences,
        "tokens": num_tokens,
        "skipped": skipped,
    }
    if redone:
        marker["redone"] = redone
    return encode(marker)


def parse_marker(data: bytes, where: str, unit: int | None = None) -> dict[str, Any]:
    """A marker's bytes, checked field by field; StoreFormatError names what is wrong.

    Part keys must be this unit's part names and the predictions key its predictions file,
    so a marker naming ``../../x`` or an absolute path is refused here, before any read.
    """
    marker = parse_object(data, f"commit marker {where}")
    what = f"commit marker {where}"
    check_format(marker.get("formatVersion", 1), what)
    missing = [k for k in _COUNTS if not is_count(marker.get(k))]
    if missing:
        raise StoreFormatError(f"{what}: {', '.join(missing)} missing or not a count")
    if unit is not None and marker["unit"] != unit:
        raise StoreFormatError(f"{what} says unit {marker['unit']}, but it is unit {unit}'s")
    if not isinstance(marker.get("parts"), list):
        raise StoreFormatError(f"{what} has no 'parts' list")
    if not isinstance(marker.get("skipped", []), list):
        raise StoreFormatError(f"{what}: 'skipped' is not a list")
    u = marker["unit"]
    for p in marker["parts"]:
        info = FileInfo.from_json(p, what)
        if layout.unit_of_part(info.key) != u:
            raise StoreFormatError(f"{what}: {info.key!r} is not a part of unit {u}")
    pred = marker.get("predictions")
    if pred is not None:
        info = FileInfo.from_json(pred, what)
        if info.key != layout.predictions_key(u):
            raise StoreFormatError(f"{what}: {info.key!r} is not unit {u}'s predictions file")
    return marker


def marker_files(marker: dict[str, Any]) -> list[FileInfo]:
    """Every file a (parsed) marker names: its parts, then its predictions file."""
    files = [FileInfo.from_json(p, "marker") for p in marker["parts"]]
    if marker.get("predictions"):
        files.append(FileInfo.from_json(marker["predictions"], "marker"))
    return files


def read_marker(storage: Storage, unit: int) -> dict[str, Any] | None:
    """The unit's parsed marker, None when there is none; StoreFormatError when malformed."""
    key = layout.marker_key(unit)
    try:
        data = storage.read_bytes(key)
    except NotFound:
        return None
    return parse_marker(data, f"{storage.uri}/{key}", unit)


def commit_unit(storage: Storage, unit: int, marker: bytes) -> None:
    """Write the marker create-only; an identical marker already there is success."""
    key = layout.marker_key(unit)
    if storage.create_only(key, marker):
        return
    existing = storage.read_bytes(key)
    if existing != marker:
        raise StorageError(
            f"{storage.uri}/{key} already exists with other content: another run committed "
            "this unit differently. Two jobs are writing to the same output.uri."
        )


def stray_keys(unit: int, marker: dict[str, Any], listed: list[str]) -> list[str]:
    """Keys under the unit's folder that its marker does not name (older attempts, temp files)."""
    keep = {p["key"] for p in marker["parts"]} | {layout.marker_key(unit)}
    prefix = layout.unit_dir(unit) + "/"
    return [k for k in listed if k.startswith(prefix) and k not in keep]


def remove_strays(storage: Storage, unit: int, marker: dict[str, Any]) -> list[str]:
    """Delete files under the unit's folder that its marker does not name."""
    strays = stray_keys(unit, marker, storage.list(layout.unit_dir(unit)))
    for k in strays:
        storage.delete(k)
    return strays
