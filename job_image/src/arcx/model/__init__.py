"""Qwen2, Qwen3 and Llama in Flax NNX: loading, sharding, activation capture, greedy generation.

The public names are imported lazily so that ``import arcx.model.commands`` (and
``arcx --help``) does not pull in JAX.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Capture": "arcx.model.decoder",
    "ForwardOutput": "arcx.model.decoder",
    "CausalLM": "arcx.model.decoder",
    "SITES": "arcx.model.decoder",
    "forward": "arcx.model.decoder",
    "ModelConfig": "arcx.model.config",
    "ModelLoadError": "arcx.model.errors",
    "LoadedModel": "arcx.model.load",
    "load_model": "arcx.model.load",
    "make_mesh": "arcx.model.sharding",
    "batch_sharding": "arcx.model.sharding",
    "greedy_generate": "arcx.model.generate",
}

__all__ = [
    "SITES",
    "Capture",
    "CausalLM",
    "ForwardOutput",
    "LoadedModel",
    "ModelConfig",
    "ModelLoadError",
    "batch_sharding",
    "forward",
    "greedy_generate",
    "load_model",
    "make_mesh",
]

if TYPE_CHECKING:
    from arcx.model.config import ModelConfig
    from arcx.model.decoder import SITES, Capture, CausalLM, ForwardOutput, forward
    from arcx.model.errors import ModelLoadError
    from arcx.model.generate import greedy_generate
    from arcx.model.load import LoadedModel, load_model
    from arcx.model.sharding import batch_sharding, make_mesh


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'arcx.model' has no attribute {name!r}")
