"""The storage interface and its errors."""

from __future__ import annotations

from typing import Protocol


class StorageError(Exception):
    """Storage failed in a way a retry here will not fix; the message says where and why."""


class NotFound(StorageError):
    """The key does not exist."""


class Storage(Protocol):
    uri: str

    def read_bytes(self, key: str) -> bytes: ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write atomically, replacing any existing object."""
        ...

    def create_only(self, key: str, data: bytes) -> bool:
        """Write only if absent; True if this call created it, False if it already existed."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (recursively), sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove the key; absent keys are not an error."""
        ...


def join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))
