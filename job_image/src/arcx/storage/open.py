"""Re-export: ``open_storage`` lives in ``arcx_store.backends.open``."""

from arcx_store.backends.open import open_storage

__all__ = ["open_storage"]
