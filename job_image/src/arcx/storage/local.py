"""Re-export: the filesystem backend lives in ``arcx_store.backends.local``."""

from arcx_store.backends.local import LocalStorage

__all__ = ["LocalStorage"]
