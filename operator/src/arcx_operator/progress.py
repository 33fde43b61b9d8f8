"""Progress of a job from its output store: the manifest's unit plan and the commit markers.

Read-only, through the shared store package (``arcx_store``): a unit counts as committed by
the same rule the runner uses to skip it (``arcx_store.units.judge_unit``: the marker
parses and every file it names is there with its size and checksum), so the operator never
reports Succeeded over a store the runner would redo. ``summarize`` is pure;
``ProgressReader`` rate-limits reads per store and caches marker bytes (keyed by their size,
since a damaged marker is replaced when its unit is redone).

A malformed manifest raises ``arcx_store.errors.StoreFormatError`` (the handlers turn it
into a condition); a marker that does not parse counts as not committed. ``plan.json`` (the
runner's plan summary, ``arcx_store.plan``) is read until one parses; a malformed one is
logged and ignored, so it never hides progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from arcx_store import layout
from arcx_store.backends.base import ObjectStat, Storage
from arcx_store.errors import BadStoreURI, NotFound, StorageError, StoreFormatError
from arcx_store.manifest import parse_manifest
from arcx_store.plan import parse_plan
from arcx_store.units import judge_unit, marked_units

Progress = dict[str, int]
DEFAULT_MIN_INTERVAL_S = 10.0
log = logging.getLogger("arcx_operator.progress")


class StoreReadError(Exception):
    """The store could not be read; the message names the store and the cause."""


class StoreReader(Protocol):
    uri: str

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        ...

    def list_stats(self) -> dict[str, ObjectStat]:
        """Every object a commit marker can name (``units/``, ``predictions/``), with its stat."""
        ...


def summarize(manifest: dict[str, Any] | None, markers: dict[int, dict[str, Any]]) -> Progress:
    """Units in the plan, units committed, tasks and tokens in committed units."""
    total = len(((manifest or {}).get("plan") or {}).get("units") or [])
    in_plan = {u: m for u, m in markers.items() if total == 0 or u < total}
    return {
        "unitsTotal": total,
        "unitsCommitted": len(in_plan),
        "tasksDone": sum(int(m.get("tasks") or 0) for m in in_plan.values()),
        "tokens": sum(int(m.get("tokens") or 0) for m in in_plan.values()),
    }


@dataclass
class _StorageReader:
    """A StoreReader over an ``arcx_store`` backend; storage failures become StoreReadError."""

    uri: str
    _storage: Storage | None = field(default=None, repr=False)

    def _open(self) -> Storage:
        raise NotImplementedError

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            try:
                self._storage = self._open()
            except StorageError as err:
                raise StoreReadError(f"cannot open the store {self.uri}: {err}") from None
        return self._storage

    def read(self, key: str) -> bytes | None:
        try:
            return self.storage.read_bytes(key)
        except NotFound:
            return None
        except StorageError as err:
            raise StoreReadError(f"cannot read {self.uri}/{key}: {err}") from None

    def list_stats(self) -> dict[str, ObjectStat]:
        try:
            stats = dict(self.storage.list_stats(layout.UNITS_DIR))
            stats.update(self.storage.list_stats(layout.PREDICTIONS_DIR))
        except StorageError as err:
            raise StoreReadError(f"cannot list {self.uri}/{layout.UNITS_DIR}: {err}") from None
        return stats


class LocalReader(_StorageReader):
    def _open(self) -> Storage:
        from arcx_store.backends.local import LocalStorage

        return LocalStorage(self.uri.removeprefix("file://"))


class GcsReader(_StorageReader):
    """gs://bucket/prefix through the store package's GCS backend (honours
    STORAGE_EMULATOR_HOST); the operator needs storage.objects.get/list on the bucket."""

    def _open(self) -> Storage:
        from arcx_store.backends.gcs import GCSStorage  # google-cloud-storage only when used

        return GCSStorage.from_uri(self.uri)


def reader_for(uri: str) -> StoreReader:
    if uri.startswith("gs://"):
        return GcsReader(uri)
    if not uri or ("://" in uri and not uri.startswith("file://")):
        raise StoreReadError(
            f"cannot read progress from {uri!r}: only gs:// and paths are supported"
        )
    return LocalReader(uri)


@dataclass
class _Entry:
    at: float
    progress: Progress
    manifest: dict[str, Any] | None = None
    # unit -> (marker size when read, marker bytes)
    markers: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    plan: dict[str, Any] | None = None


class ProgressReader:
    """Reads at most once per ``min_interval_s`` per store; marker bytes are cached."""

    def __init__(
        self,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        reader_factory: Callable[[str], StoreReader] = reader_for,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval_s = min_interval_s
        self._factory = reader_factory
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def forget(self, uri: str) -> None:
        with self._lock:
            self._entries.pop(uri, None)

    def read(self, uri: str, force: bool = False) -> Progress:
        """Progress of the store at ``uri``; ``force`` skips the rate limit (final reads).

        Raises StoreReadError when the store cannot be read and StoreFormatError when its
        manifest is malformed."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(uri)
            if not force and entry is not None and now - entry.at < self.min_interval_s:
                return entry.progress
        try:
            reader = self._factory(uri)
        except BadStoreURI as err:
            raise StoreReadError(str(err)) from None
        manifest = entry.manifest if entry else None
        if manifest is None:
            raw = reader.read(layout.MANIFEST)
            manifest = parse_manifest(raw, reader.uri) if raw is not None else None
        plan = entry.plan if entry else None
        if plan is None:
            plan = _read_plan(reader)
        stats = reader.list_stats()
        cached = dict(entry.markers) if entry else {}
        markers: dict[int, tuple[int, bytes]] = {}
        committed: dict[int, dict[str, Any]] = {}
        for unit in marked_units(stats):
            size = stats[layout.marker_key(unit)].size
            hit = cached.get(unit)
            if hit is not None and hit[0] == size:
                raw_marker: bytes | None = hit[1]
            else:
                raw_marker = reader.read(layout.marker_key(unit))
            if raw_marker is None:
                continue
            markers[unit] = (size, raw_marker)
            state = judge_unit(unit, raw_marker, stats, reader.uri)
            if state.committed and state.marker is not None:
                committed[unit] = state.marker
        progress = summarize(manifest, committed)
        with self._lock:
            self._entries[uri] = _Entry(now, progress, manifest, markers, plan)
        return progress

    def plan(self, uri: str) -> dict[str, Any] | None:
        """The plan summary (camelCase, as in plan.json) the last ``read`` of ``uri`` found,
        or None when the runner has not written one (or it did not parse)."""
        with self._lock:
            entry = self._entries.get(uri)
            return dict(entry.plan) if entry is not None and entry.plan is not None else None


def _read_plan(reader: StoreReader) -> dict[str, Any] | None:
    raw = reader.read(layout.PLAN)
    if raw is None:
        return None
    try:
        return parse_plan(raw, f"{reader.uri}/{layout.PLAN}").to_json()
    except StoreFormatError as err:
        log.warning("ignoring a malformed plan summary", extra={"error": str(err)})
        return None


__all__ = [
    "GcsReader",
    "LocalReader",
    "ProgressReader",
    "StoreFormatError",
    "StoreReadError",
    "StoreReader",
    "reader_for",
    "summarize",
]
