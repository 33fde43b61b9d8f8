"""Progress of a job from its output store: the manifest's unit plan and the commit markers.

Read-only. ``summarize`` is pure; the readers list and read keys on a filesystem or GCS;
``ProgressReader`` rate-limits reads per store and caches markers (they are create-only).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from arcx_operator import store_layout as layout

Progress = dict[str, int]
DEFAULT_MIN_INTERVAL_S = 10.0


class StoreReadError(Exception):
    """The store could not be read; the message names the store and the cause."""


class StoreReader(Protocol):
    uri: str

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        ...

    def list_markers(self) -> list[str]:
        """Keys of every ``units/<u>/COMMITTED`` in the store."""
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
class LocalReader:
    uri: str

    @property
    def root(self) -> Path:
        return Path(self.uri.removeprefix("file://"))

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StoreReadError(f"cannot read {self.root / key}: {err.strerror}") from None

    def list_markers(self) -> list[str]:
        units = self.root / layout.UNITS_DIR
        if not units.is_dir():
            return []
        return sorted(
            f"{layout.UNITS_DIR}/{d.name}/{layout.MARKER_NAME}"
            for d in units.iterdir()
            if (d / layout.MARKER_NAME).is_file()
        )


@dataclass
class GcsReader:
    """gs://bucket/prefix through google-cloud-storage (honours STORAGE_EMULATOR_HOST)."""

    uri: str
    _client: Any = field(default=None, repr=False)

    def _bucket_prefix(self) -> tuple[Any, str]:
        from google.cloud import storage  # imported lazily: only GCS stores need it

        if self._client is None:
            emulator = os.environ.get("STORAGE_EMULATOR_HOST")
            if emulator:
                from google.auth.credentials import AnonymousCredentials

                endpoint = emulator if "://" in emulator else f"http://{emulator}"
                self._client = storage.Client(
                    project=os.environ.get("GOOGLE_CLOUD_PROJECT", "arcx-local"),
                    credentials=AnonymousCredentials(),
                    client_options={"api_endpoint": endpoint},
                )
            else:
                try:
                    self._client = storage.Client()
                except Exception as err:  # no credentials in this environment
                    raise StoreReadError(
                        f"cannot create a GCS client to read {self.uri}: {err}. Give the operator "
                        "a service account with storage.objects.get/list on the bucket."
                    ) from None
        bucket, _, prefix = self.uri.removeprefix("gs://").partition("/")
        return self._client.bucket(bucket), prefix.strip("/")

    def read(self, key: str) -> bytes | None:
        from google.api_core import exceptions

        bucket, prefix = self._bucket_prefix()
        name = f"{prefix}/{key}" if prefix else key
        try:
            return bucket.blob(name).download_as_bytes()
        except exceptions.NotFound:
            return None
        except exceptions.GoogleAPIError as err:
            raise StoreReadError(f"cannot read {self.uri}/{key}: {err}") from None

    def list_markers(self) -> list[str]:
        from google.api_core import exceptions

        bucket, prefix = self._bucket_prefix()
        base = f"{prefix}/" if prefix else ""
        try:
            names = [b.name for b in bucket.list_blobs(prefix=f"{base}{layout.UNITS_DIR}/")]
        except exceptions.GoogleAPIError as err:
            raise StoreReadError(f"cannot list {self.uri}/{layout.UNITS_DIR}: {err}") from None
        keys = (n[len(base) :] for n in names)
        return sorted(k for k in keys if layout.unit_of_marker(k) is not None)


def reader_for(uri: str) -> StoreReader:
    if uri.startswith("gs://"):
        return GcsReader(uri)
    if "://" in uri and not uri.startswith("file://"):
        raise StoreReadError(
            f"cannot read progress from {uri!r}: only gs:// and paths are supported"
        )
    return LocalReader(uri)


@dataclass
class _Entry:
    at: float
    progress: Progress
    manifest: dict[str, Any] | None = None
    markers: dict[int, dict[str, Any]] = field(default_factory=dict)


class ProgressReader:
    """Reads at most once per ``min_interval_s`` per store; markers are cached once seen."""

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
        """Progress of the store at ``uri``; ``force`` skips the rate limit (final reads)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(uri)
            if not force and entry is not None and now - entry.at < self.min_interval_s:
                return entry.progress
        reader = self._factory(uri)
        manifest = entry.manifest if entry else None
        if manifest is None:
            raw = reader.read(layout.MANIFEST)
            manifest = json.loads(raw) if raw else None
        markers = dict(entry.markers) if entry else {}
        for key in reader.list_markers():
            unit = layout.unit_of_marker(key)
            if unit is None or unit in markers:
                continue
            raw = reader.read(key)
            if raw is None:
                continue
            try:
                markers[unit] = json.loads(raw)
            except json.JSONDecodeError:
                markers[unit] = {}  # counted as committed; task and token totals unknown
        progress = summarize(manifest, markers)
        with self._lock:
            self._entries[uri] = _Entry(now, progress, manifest, markers)
        return progress
