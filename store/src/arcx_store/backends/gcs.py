"""Google Cloud Storage backend, through the official google-cloud-storage client.

- Writes are single objects, so a reader sees the old or the new object, never a part.
- ``create_only`` uses the precondition ``if_generation_match=0``: the server accepts the
  write only when no live object has the name, so exactly one writer wins.
- Every call retries with exponential backoff on 429, 5xx, timeouts and dropped
  connections (google-cloud-storage's retry predicate), within a deadline
  (``ARCX_GCS_RETRY_DEADLINE`` seconds, default 120). An upload whose response was lost
  and that is retried may then meet its own object: ``create_only`` compares the content
  and reports success when it is the same bytes.
- Parts larger than 8 MiB go up as resumable uploads in chunks of ``RESUMABLE_CHUNK``, so
  a dropped connection resumes from the last chunk instead of starting over.
- ``STORAGE_EMULATOR_HOST`` (``http://host:port``) points the client at a GCS-protocol
  server such as fake-gcs-server, with anonymous credentials.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Callable
from typing import Any, TypeVar

from arcx_store import layout
from arcx_store.backends.base import ObjectStat, check_range
from arcx_store.errors import BadStoreURI, NotFound, StorageError

# google-cloud-storage sends objects above 8 MiB as resumable uploads (one request below);
# ours go in chunks of RESUMABLE_CHUNK, each retried on its own.
RESUMABLE_THRESHOLD = 8 * 1024 * 1024
RESUMABLE_CHUNK = 8 * 1024 * 1024  # a multiple of 256 KiB, as the protocol requires
DEFAULT_RETRY_DEADLINE = 120.0

T = TypeVar("T")


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    if not uri.startswith("gs://"):
        raise BadStoreURI(f"not a gs:// URI: {uri!r}")
    rest = uri.removeprefix("gs://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise BadStoreURI(f"no bucket in {uri!r}: use gs://bucket/prefix")
    prefix = prefix.strip("/")
    why = layout.check_key(prefix) if prefix else None
    if why is not None:
        raise BadStoreURI(f"bad prefix in {uri!r}: {why}")
    return bucket, prefix


def _make_retry(deadline: float) -> Any:
    from google.api_core.retry import Retry
    from google.cloud.storage.retry import _should_retry

    return Retry(
        predicate=_should_retry, initial=0.2, maximum=8.0, multiplier=2.0, timeout=deadline
    )


def make_client() -> Any:
    """A google-cloud-storage client: the emulator's when STORAGE_EMULATOR_HOST is set."""
    from google.cloud import storage

    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return storage.Client(
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "arcx-local"),
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    try:
        return storage.Client()
    except Exception as err:  # google.auth.exceptions.DefaultCredentialsError and friends
        raise StorageError(
            f"cannot create a Google Cloud Storage client: {err}. "
            "Give the pod a service account with storage access (Workload Identity), "
            "or set STORAGE_EMULATOR_HOST for a local GCS-protocol server."
        ) from None


class GCSStorage:
    def __init__(
        self, bucket: str, prefix: str, *, client: Any = None, retry_deadline: float | None = None
    ) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"gs://{bucket}/{self.prefix}" if self.prefix else f"gs://{bucket}"
        if retry_deadline is None:
            retry_deadline = float(
                os.environ.get("ARCX_GCS_RETRY_DEADLINE", DEFAULT_RETRY_DEADLINE)
            )
        self._deadline = retry_deadline
        self._retry = _make_retry(retry_deadline)
        self._client = client if client is not None else make_client()
        self._bucket = self._client.bucket(bucket)

    @classmethod
    def from_uri(cls, uri: str, *, retry_deadline: float | None = None) -> GCSStorage:
        bucket, prefix = parse_gs_uri(uri)
        return cls(bucket, prefix, retry_deadline=retry_deadline)

    # -- helpers -------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        key = key.rstrip("/")
        why = layout.check_key(key) if key else None
        if why is not None:
            raise StorageError(f"invalid key {key!r} under {self.uri}: {why}")
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        from google.api_core import exceptions as gexc

        where = f"gs://{self.bucket_name}/{self._name(key)}"
        try:
            return fn()
        except gexc.NotFound as err:
            raise NotFound(f"{where} does not exist ({err.message})") from None
        except gexc.Forbidden as err:
            raise StorageError(
                f"cannot {what} {where}: permission denied ({err.message}); "
                "grant the job's service account roles/storage.objectUser on the bucket"
            ) from None
        except gexc.RetryError as err:
            raise StorageError(
                f"cannot {what} {where}: storage unreachable after retrying for "
                f"{self._deadline:.0f}s (last error: {err.cause})"
            ) from None
        except gexc.GoogleAPICallError as err:
            raise StorageError(f"cannot {what} {where}: {err}") from None
        except (OSError, ValueError) as err:
            # requests' ConnectionError is an OSError; retries exhausted without RetryError
            raise StorageError(f"cannot {what} {where}: {err}") from None

    def _blob(self, key: str, size: int = 0) -> Any:
        chunk = RESUMABLE_CHUNK if size > RESUMABLE_THRESHOLD else None
        return self._bucket.blob(self._name(key), chunk_size=chunk)

    # -- the Storage interface -----------------------------------------------------------

    def read_bytes(self, key: str) -> bytes:
        blob = self._blob(key)
        return self._call("read", key, lambda: blob.download_as_bytes(retry=self._retry))

    def read_mapped(self, key: str) -> bytes | mmap.mmap:
        return self.read_bytes(key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        check_range(start, length)
        if length == 0:
            return b""
        from google.api_core import exceptions as gexc

        blob = self._blob(key)

        def get() -> bytes:
            try:
                # ``end`` is inclusive. A partial object has no whole-object checksum to
                # compare; the caller checks what it reads (the marker's sha256 covers parts).
                return blob.download_as_bytes(
                    start=start, end=start + length - 1, checksum=None, retry=self._retry
                )
            except gexc.RequestRangeNotSatisfiable:
                return b""  # start at or past the end: nothing there, as a local pread says

        return self._call("read", key, get)

    def write_bytes(self, key: str, data: bytes) -> ObjectStat:
        blob = self._blob(key, len(data))
        # Overwrites are retried too: every arcx object is written whole with the same bytes
        # on a retry, so repeating the write is harmless.
        self._call(
            "write",
            key,
            lambda: blob.upload_from_string(
                data, content_type="application/octet-stream", retry=self._retry
            ),
        )
        # The upload's response carries the object's metadata: its crc32c costs nothing.
        return ObjectStat(len(data), blob.crc32c)

    def create_only(self, key: str, data: bytes) -> bool:
        from google.api_core import exceptions as gexc

        # Always one request (never resumable): create-only objects are small (markers,
        # manifests), and fake-gcs-server checks the precondition on this path only.
        blob = self._blob(key)

        def upload() -> bool:
            try:
                blob.upload_from_string(
                    data,
                    content_type="application/octet-stream",
                    if_generation_match=0,
                    retry=self._retry,
                )
                return True
            except gexc.PreconditionFailed:
                return False

        # False also when a retried upload met the object its own lost first attempt wrote;
        # callers that care (commit markers) compare the stored bytes with theirs.
        return self._call("create", key, upload)

    def exists(self, key: str) -> bool:
        blob = self._blob(key)
        return self._call("stat", key, lambda: blob.exists(retry=self._retry))

    def size(self, key: str) -> int:
        return self.stat(key).size

    def stat(self, key: str) -> ObjectStat:
        name = self._name(key)

        def get() -> ObjectStat:
            blob = self._bucket.get_blob(name, retry=self._retry)
            if blob is None:
                raise NotFound(f"gs://{self.bucket_name}/{name} does not exist")
            return ObjectStat(int(blob.size), blob.crc32c)

        return self._call("stat", key, get)

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.list_stats(prefix))

    def list_stats(self, prefix: str = "") -> dict[str, ObjectStat]:
        prefix = prefix.strip("/")
        base = self._name(prefix)
        query = f"{base}/" if base else ""
        strip = f"{self.prefix}/" if self.prefix else ""

        def stats() -> dict[str, ObjectStat]:
            blobs = self._client.list_blobs(
                self.bucket_name, prefix=query or None, retry=self._retry
            )
            return {b.name.removeprefix(strip): ObjectStat(int(b.size), b.crc32c) for b in blobs}

        out = self._call("list", prefix, stats)
        if prefix and not out:
            with contextlib.suppress(NotFound):
                out = {prefix: self.stat(prefix)}
        return dict(sorted(out.items()))

    def delete(self, key: str) -> None:
        from google.api_core import exceptions as gexc

        blob = self._blob(key)

        def remove() -> None:
            with contextlib.suppress(gexc.NotFound):
                blob.delete(retry=self._retry)

        self._call("delete", key, remove)

    def check_reachable(self) -> None:
        """Fail fast with a clear message when the bucket cannot be reached or does not exist."""

        def probe() -> None:
            if not self._bucket.exists(retry=self._retry):
                raise StorageError(
                    f"bucket gs://{self.bucket_name} does not exist; create it or fix output.uri"
                )

        self._call("reach", "", probe)
