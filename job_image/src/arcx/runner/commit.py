"""Commit markers: a unit is done only when ``units/<u>/COMMITTED`` exists.

The marker is create-only JSON listing every part (and the predictions file) with its
size and sha256. Host 0 writes it after every host of the slice wrote its part (a
barrier), so a marker never names a part that is not there. A unit without a marker is
redone from scratch; its stray parts are overwritten. No clocks inside: the same unit
gives the same marker bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from arcx.runner import layout
from arcx.storage import NotFound, Storage, StorageError


@dataclass(frozen=True)
class FileInfo:
    key: str  # relative to the store root
    size: int
    sha256: str

    @classmethod
    def of(cls, key: str, data: bytes) -> FileInfo:
        return cls(key, len(data), hashlib.sha256(data).hexdigest())

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "sha256": self.sha256}


def build_marker(
    unit: int,
    *,
    parts: list[FileInfo],
    predictions: FileInfo | None,
    num_tasks: int,
    num_sequences: int,
    num_tokens: int,
    skipped: list[dict[str, Any]],
) -> bytes:
    marker = {
        "formatVersion": layout.FORMAT_VERSION,
        "unit": unit,
        "parts": [p.to_json() for p in parts],
        "predictions": predictions.to_json() if predictions else None,
        "tasks": num_tasks,
        "sequences": num_sequences,
        "tokens": num_tokens,
        "skipped": skipped,
    }
    return (json.dumps(marker, sort_keys=True, indent=2) + "\n").encode()


def parse_marker(data: bytes, where: str) -> dict[str, Any]:
    try:
        marker = json.loads(data)
    except json.JSONDecodeError as err:
        raise StorageError(f"commit marker {where} is not valid JSON: {err}") from None
    if not isinstance(marker, dict) or "parts" not in marker:
        raise StorageError(f"commit marker {where} has no 'parts' list")
    return marker


def read_marker(storage: Storage, unit: int) -> dict[str, Any] | None:
    key = layout.marker_key(unit)
    try:
        data = storage.read_bytes(key)
    except NotFound:
        return None
    return parse_marker(data, f"{storage.uri}/{key}")


def is_committed(storage: Storage, unit: int) -> bool:
    return storage.exists(layout.marker_key(unit))


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


def remove_strays(storage: Storage, unit: int, marker: dict[str, Any]) -> list[str]:
    """Delete files under the unit's folder that its marker does not name (older attempts)."""
    keep = {p["key"] for p in marker["parts"]} | {layout.marker_key(unit)}
    strays = [k for k in storage.list(layout.unit_dir(unit)) if k not in keep]
    for k in strays:
        storage.delete(k)
    return strays
