"""The arcx activation store: the only reader and writer of its layout.

- ``layout``: every key and tensor name; ``manifest``: manifest.json; ``markers``: commit
  markers; ``units``: the committed-unit rule; ``backends``: local and gs:// storage.
- ``header``: the bounded safetensors header reader; ``parts`` and ``dtypes`` (the
  ``tensors`` extra, numpy): part assembly, encoding and decoding, the one dtype table.

JAX-free: the job image and the operator both install it. docs/activation-store.md
describes the layout.
"""

from arcx_store.backends import ObjectStat, Storage, open_storage
from arcx_store.errors import BadStoreURI, NotFound, StorageError, StoreFormatError, StoreMismatch

__all__ = [
    "BadStoreURI",
    "NotFound",
    "ObjectStat",
    "Storage",
    "StorageError",
    "StoreFormatError",
    "StoreMismatch",
    "open_storage",
]
