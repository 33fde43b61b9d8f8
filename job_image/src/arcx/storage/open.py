"""Pick a storage backend from a URI."""

from __future__ import annotations

from arcx.storage.base import Storage, StorageError
from arcx.storage.local import LocalStorage


def open_storage(uri: str) -> Storage:
    """``gs://bucket/prefix`` -> GCS; ``file://path`` or a plain path -> the local filesystem."""
    if uri.startswith("gs://"):
        from arcx.storage.gcs import GCSStorage  # google-cloud-storage is only imported when used

        return GCSStorage.from_uri(uri)
    if uri.startswith("file://"):
        return LocalStorage(uri.removeprefix("file://"))
    if "://" in uri:
        raise StorageError(
            f"unsupported storage URI {uri!r}: use gs://bucket/prefix or a local path"
        )
    return LocalStorage(uri)
