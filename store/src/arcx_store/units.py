"""The committed-unit rule: "is this unit finished, and what does it hold?", answered once.

A unit is committed when its marker parses and every file the marker names exists with
the size it records and, where both the marker and the backend have one, the same crc32c.
That costs one listing of the store and one read per marker; the full sha256 of every
byte is ``arcx verify``'s job (and the runner's with ``output.verifyOnResume``).

The runner (what to skip, what to redo), verify, inspect, the SAE loader and the
operator's progress reader all decide through ``judge_unit``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from arcx_store import layout
from arcx_store.backends.base import ObjectStat, Storage
from arcx_store.errors import NotFound, StorageError, StoreFormatError
from arcx_store.markers import FileInfo, marker_files, parse_marker, stray_keys


@dataclass(frozen=True)
class UnitState:
    unit: int
    has_marker: bool = False
    marker: dict[str, Any] | None = None  # the parsed marker when it parses
    problem: str | None = None  # why a unit with a marker is not committed
    strays: tuple[str, ...] = field(default=())  # files under the unit its marker does not name

    @property
    def committed(self) -> bool:
        return self.marker is not None and self.problem is None

    @property
    def damaged(self) -> bool:
        """A marker is there but the unit does not hold what it says: redo it."""
        return self.has_marker and not self.committed


def file_problem(info: FileInfo, stat: ObjectStat | None) -> str | None:
    """Why the stored object does not match the marker's entry (cheap checks), or None."""
    if stat is None:
        return f"{info.key} is missing"
    if stat.size != info.size:
        return f"{info.key} has {stat.size} bytes, the marker says {info.size}"
    if info.crc32c and stat.crc32c and info.crc32c != stat.crc32c:
        return f"{info.key} has crc32c {stat.crc32c}, the marker says {info.crc32c}"
    return None


def judge_unit(
    unit: int, marker_bytes: bytes | None, stats: Mapping[str, ObjectStat], where: str
) -> UnitState:
    """Pure: the unit's state from its marker's bytes and a listing of the store."""
    if marker_bytes is None:
        return UnitState(unit)
    try:
        marker = parse_marker(marker_bytes, f"{where}/{layout.marker_key(unit)}", unit)
    except StoreFormatError as err:
        return UnitState(unit, has_marker=True, problem=f"the marker does not parse: {err}")
    strays = tuple(stray_keys(unit, marker, list(stats)))
    for info in marker_files(marker):
        problem = file_problem(info, stats.get(info.key))
        if problem is not None:
            return UnitState(unit, True, marker, problem, strays)
    return UnitState(unit, True, marker, None, strays)


def sha256_problem(storage: Storage, info: FileInfo) -> str | None:
    """The full check: read the object and compare its sha256 with the marker's."""
    try:
        data = storage.read_bytes(info.key)
    except NotFound:
        return f"{info.key} is missing"
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != info.size:
        return f"{info.key} has {len(data)} bytes, the marker says {info.size}"
    if digest != info.sha256:
        return f"{info.key} has sha256 {digest[:16]}..., the marker says {info.sha256[:16]}..."
    return None


def list_store(storage: Storage) -> dict[str, ObjectStat]:
    """One listing of everything a unit's marker can name (units/ and predictions/)."""
    stats = dict(storage.list_stats(layout.UNITS_DIR))
    stats.update(storage.list_stats(layout.PREDICTIONS_DIR))
    return stats


def marked_units(stats: Mapping[str, ObjectStat]) -> list[int]:
    """Units that have a marker in a listing, sorted."""
    return sorted({u for k in stats if (u := layout.unit_of_marker(k)) is not None})


def unit_states(
    storage: Storage,
    units: Iterable[int] | None = None,
    *,
    full: bool = False,
    stats: Mapping[str, ObjectStat] | None = None,
) -> dict[int, UnitState]:
    """Each unit's state (every unit with a marker when ``units`` is None); ``full`` also
    compares every byte's sha256 (reads the whole store)."""
    stats = list_store(storage) if stats is None else stats
    wanted = marked_units(stats) if units is None else list(units)
    out: dict[int, UnitState] = {}
    for u in wanted:
        key = layout.marker_key(u)
        data: bytes | None = None
        if key in stats:
            try:
                data = storage.read_bytes(key)
            except NotFound:  # deleted since the listing
                data = None
        state = judge_unit(u, data, stats, storage.uri)
        if full and state.committed and state.marker is not None:
            for info in marker_files(state.marker):
                problem = sha256_problem(storage, info)
                if problem is not None:
                    state = UnitState(u, True, state.marker, problem, state.strays)
                    break
        out[u] = state
    return out


def discard_marker(storage: Storage, unit: int) -> None:
    """Remove a damaged unit's marker so the unit is redone (its parts are overwritten)."""
    try:
        storage.delete(layout.marker_key(unit))
    except StorageError as err:
        raise StorageError(f"cannot discard the damaged marker of unit {unit}: {err}") from None
