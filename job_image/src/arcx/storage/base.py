"""Re-export: the storage interface lives in ``arcx_store.backends.base``."""

from arcx_store.backends.base import ObjectStat, Storage, join_key
from arcx_store.errors import NotFound, StorageError

__all__ = ["NotFound", "ObjectStat", "Storage", "StorageError", "join_key"]
