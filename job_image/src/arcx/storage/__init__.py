"""Re-export of ``arcx_store.backends`` (the store package owns the storage backends).

Kept so the data and model layers, which open task stores and model caches, import
storage the way they always have; new code imports ``arcx_store`` directly.
"""

from arcx_store.backends import BadStoreURI, NotFound, ObjectStat, Storage, StorageError
from arcx_store.backends import open_storage as open_storage

__all__ = ["BadStoreURI", "NotFound", "ObjectStat", "Storage", "StorageError", "open_storage"]
