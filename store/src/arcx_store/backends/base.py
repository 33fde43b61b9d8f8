"""The storage interface."""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ObjectStat:
    """What a backend knows about an object without reading it.

    ``crc32c`` is the backend's own checksum (GCS: base64 of the big-endian CRC32C, as the
    JSON API reports it); None where the backend has none for free (a local filesystem).
    """

    size: int
    crc32c: str | None = None


class Storage(Protocol):
    uri: str

    def read_bytes(self, key: str) -> bytes: ...

    def read_mapped(self, key: str) -> bytes | mmap.mmap:
        """The object's bytes, memory-mapped where the backend can (local files)."""
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from offset ``start``; fewer at the object's end (none past it).

        One ranged request on gs://, one pread locally: a part's header and one tensor are
        read without fetching the whole part.
        """
        ...

    def write_bytes(self, key: str, data: bytes) -> ObjectStat:
        """Write atomically, replacing any existing object; what the backend now holds."""
        ...

    def create_only(self, key: str, data: bytes) -> bool:
        """Write only if absent; True if this call created it, False if it already existed."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def stat(self, key: str) -> ObjectStat: ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (recursively, temporary files included), sorted."""
        ...

    def list_stats(self, prefix: str = "") -> dict[str, ObjectStat]:
        """Every key under ``prefix`` with its stat, from one listing."""
        ...

    def delete(self, key: str) -> None:
        """Remove the key; absent keys are not an error."""
        ...

    def check_reachable(self) -> None:
        """Fail fast (StorageError) when the store's location cannot be reached."""
        ...


def check_range(start: int, length: int) -> None:
    if start < 0 or length < 0:
        raise ValueError(f"a byte range needs start >= 0 and length >= 0, got {start}, {length}")


def join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))
