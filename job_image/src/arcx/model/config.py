"""The Qwen2 configuration, read from a checkpoint's own ``config.json``.

Both layouts are accepted: transformers 5 writes the rotary settings under
``rope_parameters`` (``{"rope_type": "default", "rope_theta": ...}``), older files keep
``rope_theta`` at the top level with an optional ``rope_scaling`` block.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from arcx.model.errors import ModelLoadError

SUPPORTED_ARCHITECTURES = ("Qwen2ForCausalLM",)
SUPPORTED_ROPE_TYPES = ("default", "linear")
_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
)


@dataclasses.dataclass(frozen=True)
class Qwen2Config:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_type: str = "default"
    rope_factor: float = 1.0
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 32768
    bos_token_id: int | None = None
    eos_token_id: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ModelLoadError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.head_dim % 2:
            raise ModelLoadError(
                f"head_dim must be even for rotary embeddings, got {self.head_dim}"
            )

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config.json") -> Qwen2Config:
        archs = raw.get("architectures") or []
        model_type = raw.get("model_type")
        if archs and not any(a in SUPPORTED_ARCHITECTURES for a in archs):
            raise ModelLoadError(
                f"{where}: unsupported architecture {archs}; arcx runs "
                f"{', '.join(SUPPORTED_ARCHITECTURES)} (Qwen2 / Qwen2.5 checkpoints)"
            )
        if not archs and model_type != "qwen2":
            raise ModelLoadError(
                f"{where}: unsupported model_type {model_type!r} and no 'architectures'; "
                "arcx runs Qwen2ForCausalLM (model_type 'qwen2')"
            )
        if raw.get("use_sliding_window"):
            raise ModelLoadError(
                f"{where}: use_sliding_window=true is not supported; arcx implements full attention"
            )
        if raw.get("hidden_act", "silu") != "silu":
            raise ModelLoadError(
                f"{where}: hidden_act {raw['hidden_act']!r} is not supported (silu only)"
            )
        missing = [f for f in _REQUIRED if raw.get(f) is None]
        if missing:
            raise ModelLoadError(f"{where}: required field(s) {missing} missing")
        theta, rope_type, factor = _rope(raw, where)
        heads = int(raw["num_attention_heads"])
        hidden = int(raw["hidden_size"])
        eos = raw.get("eos_token_id")
        eos_ids = () if eos is None else tuple(eos) if isinstance(eos, list) else (int(eos),)
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(raw.get("num_key_value_heads") or heads),
            head_dim=int(raw.get("head_dim") or hidden // heads),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_type=rope_type,
            rope_factor=factor,
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            max_position_embeddings=int(raw.get("max_position_embeddings", 32768)),
            bos_token_id=raw.get("bos_token_id"),
            eos_token_id=eos_ids,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Qwen2Config:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelLoadError(
                f"{path}: not found; a model directory needs a config.json"
            ) from None
        except json.JSONDecodeError as err:
            raise ModelLoadError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(raw, where=str(path))


def _rope(raw: dict[str, Any], where: str) -> tuple[float, str, float]:
    """(theta, rope type, scaling factor) from either config layout."""
    params = raw.get("rope_parameters")
    if isinstance(params, dict):
        # transformers 5; a per-layer-type mapping ({"full_attention": {...}}) is unwrapped.
        if "full_attention" in params and isinstance(params["full_attention"], dict):
            params = params["full_attention"]
        theta = params.get("rope_theta", raw.get("rope_theta", 10000.0))
        scaling: dict[str, Any] = params
    else:
        theta = raw.get("rope_theta", 10000.0)
        scaling = raw.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type") or scaling.get("type") or "default"
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ModelLoadError(
            f"{where}: rope type {rope_type!r} is not supported; arcx supports {SUPPORTED_ROPE_TYPES}"
        )
    factor = float(scaling.get("factor", 1.0)) if rope_type == "linear" else 1.0
    return float(theta), rope_type, factor
