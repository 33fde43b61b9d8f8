"""arcx: run Qwen2-family models over ARC-AGI tasks and record their activations.

Importing ``arcx`` stays cheap (no JAX); heavy modules are imported where used.
``arcx.open_store(uri)`` opens an activation store read-only (see arcx.notebook).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from arcx.notebook import open_store


def __getattr__(name: str) -> Any:
    if name == "open_store":
        from arcx.notebook import open_store

        return open_store
    raise AttributeError(f"module 'arcx' has no attribute {name!r}")


__all__ = ["__version__", "open_store"]
