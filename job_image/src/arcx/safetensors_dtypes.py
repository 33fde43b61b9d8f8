"""Re-export: the one dtype table lives in ``arcx_store.dtypes``."""

from arcx_store.dtypes import BY_NAME, NAME_OF

__all__ = ["BY_NAME", "NAME_OF"]
