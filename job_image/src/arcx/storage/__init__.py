"""Object storage behind one small interface: a local filesystem or Google Cloud Storage.

Keys are '/'-separated paths relative to the store's root URI. Every backend gives the
same guarantees: ``write_bytes`` is atomic (readers see the old or the new object, never a
part), ``create_only`` succeeds for exactly one writer. Commit markers rely on both.
"""

from arcx.storage.base import NotFound, Storage, StorageError
from arcx.storage.open import open_storage

__all__ = ["NotFound", "Storage", "StorageError", "open_storage"]
