"""Object storage behind one small interface: a local filesystem or Google Cloud Storage.

Keys are '/'-separated paths relative to the store's root URI. Every backend gives the
same guarantees: ``write_bytes`` is atomic (readers see the old or the new object, never a
part), ``create_only`` succeeds for exactly one writer. Commit markers rely on both.
"""

from arcx_store.backends.base import ObjectStat, Storage, join_key
from arcx_store.backends.open import open_storage
from arcx_store.errors import BadStoreURI, NotFound, StorageError

__all__ = [
    "BadStoreURI",
    "NotFound",
    "ObjectStat",
    "Storage",
    "StorageError",
    "join_key",
    "open_storage",
]
