"""Pick a storage backend from a URI."""

from __future__ import annotations

from arcx_store.backends.base import Storage
from arcx_store.backends.local import LocalStorage
from arcx_store.errors import BadStoreURI


def open_storage(uri: str) -> Storage:
    """``gs://bucket/prefix`` -> GCS; ``file://path`` or a plain path -> the local filesystem."""
    if not isinstance(uri, str) or not uri.strip():
        raise BadStoreURI(
            "empty storage URI: give a local path or gs://bucket/prefix (an empty one would "
            "write into the working directory)"
        )
    if uri.startswith("gs://"):
        from arcx_store.backends.gcs import GCSStorage  # google-cloud-storage only when used

        return GCSStorage.from_uri(uri)
    if uri.startswith("file://"):
        path = uri.removeprefix("file://")
        if not path:
            raise BadStoreURI(f"storage URI {uri!r} has no path")
        return LocalStorage(path)
    if "://" in uri:
        raise BadStoreURI(
            f"unsupported storage URI {uri!r}: use gs://bucket/prefix or a local path"
        )
    return LocalStorage(uri)
