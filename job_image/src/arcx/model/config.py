"""The model configuration, read from a checkpoint's own ``config.json``.

One decoder covers three Hugging Face families; :data:`FAMILIES` says what each switches on.
The family is chosen by ``model_type`` (``architectures`` must agree when present); any other
``model_type`` is refused with a one-line error naming it.

Both rotary layouts are accepted: transformers 5 writes them under ``rope_parameters``
(``{"rope_type": "default", "rope_theta": ...}``), older files keep ``rope_theta`` at the top
level with an optional ``rope_scaling`` block.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from arcx.model.errors import ModelLoadError


@dataclasses.dataclass(frozen=True)
class Family:
    """What one Hugging Face family of decoders changes in the shared block."""

    architecture: str  # the ``architectures`` entry of its config.json
    qkv_bias: bool | None  # None: from config.json's ``attention_bias``
    o_bias: bool | None  # None: from config.json's ``attention_bias``
    qk_norm: bool  # RMSNorm over head_dim on q and k before RoPE (Qwen3)


FAMILIES: dict[str, Family] = {
    "qwen2": Family("Qwen2ForCausalLM", qkv_bias=True, o_bias=False, qk_norm=False),
    "qwen3": Family("Qwen3ForCausalLM", qkv_bias=None, o_bias=None, qk_norm=True),
    "llama": Family("LlamaForCausalLM", qkv_bias=None, o_bias=None, qk_norm=False),
}
# The model_type values arcx runs; the job config's and the CRD's model.source text name them.
MODEL_TYPES = tuple(FAMILIES)
SUPPORTED_ARCHITECTURES = tuple(f.architecture for f in FAMILIES.values())
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
)


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """The rotary settings; ``inverse_frequencies`` in ``rope.py`` turns them into a table."""

    theta: float = 10000.0
    type: str = "default"  # one of SUPPORTED_ROPE_TYPES
    factor: float = 1.0  # linear and llama3
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    original_max_position_embeddings: int = 8192  # llama3


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    model_type: str = "qwen2"
    qkv_bias: bool = True
    o_bias: bool = False
    qk_norm: bool = False
    rms_norm_eps: float = 1e-6
    rope: RopeScaling = RopeScaling()
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
    def from_dict(cls, raw: dict[str, Any], where: str = "config.json") -> ModelConfig:
        model_type = _model_type(raw, where)
        family = FAMILIES[model_type]
        if raw.get("use_sliding_window"):
            raise ModelLoadError(
                f"{where}: use_sliding_window=true is not supported; arcx implements full attention"
            )
        if raw.get("hidden_act", "silu") != "silu":
            raise ModelLoadError(
                f"{where}: hidden_act {raw['hidden_act']!r} is not supported (silu only)"
            )
        if raw.get("mlp_bias"):
            raise ModelLoadError(f"{where}: mlp_bias=true is not supported (no MLP biases)")
        missing = [f for f in _REQUIRED if raw.get(f) is None]
        if missing:
            raise ModelLoadError(f"{where}: required field(s) {missing} missing")
        heads = int(raw["num_attention_heads"])
        hidden = int(raw["hidden_size"])
        eos = raw.get("eos_token_id")
        eos_ids = () if eos is None else tuple(eos) if isinstance(eos, list) else (int(eos),)
        attention_bias = bool(raw.get("attention_bias", False))
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(raw.get("num_key_value_heads") or heads),
            head_dim=int(raw.get("head_dim") or hidden // heads),
            model_type=model_type,
            qkv_bias=attention_bias if family.qkv_bias is None else family.qkv_bias,
            o_bias=attention_bias if family.o_bias is None else family.o_bias,
            qk_norm=family.qk_norm,
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope=_rope(raw, where),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            max_position_embeddings=int(raw.get("max_position_embeddings", 32768)),
            bos_token_id=raw.get("bos_token_id"),
            eos_token_id=eos_ids,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
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


def _model_type(raw: dict[str, Any], where: str) -> str:
    """The family key: ``model_type``, else the one implied by ``architectures``."""
    archs = raw.get("architectures") or []
    model_type = raw.get("model_type")
    by_arch = {f.architecture: name for name, f in FAMILIES.items()}
    if model_type is None:
        known = [by_arch[a] for a in archs if a in by_arch]
        if not known:
            raise ModelLoadError(
                f"{where}: no model_type and unsupported architecture {archs}; arcx runs "
                f"model_type {', '.join(FAMILIES)} ({', '.join(SUPPORTED_ARCHITECTURES)})"
            )
        return known[0]
    if model_type not in FAMILIES:
        raise ModelLoadError(
            f"{where}: unsupported model_type {model_type!r}; arcx runs model_type "
            f"{', '.join(FAMILIES)} ({', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    if archs and FAMILIES[model_type].architecture not in archs:
        raise ModelLoadError(
            f"{where}: unsupported architecture {archs} for model_type {model_type!r}; "
            f"expected {FAMILIES[model_type].architecture}"
        )
    return model_type


def _rope(raw: dict[str, Any], where: str) -> RopeScaling:
    """The rotary settings from either config layout."""
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
    if scaling.get("partial_rotary_factor", 1.0) != 1.0:
        raise ModelLoadError(f"{where}: partial_rotary_factor != 1 is not supported")
    if rope_type == "default":
        return RopeScaling(theta=float(theta))
    if "factor" not in scaling:
        raise ModelLoadError(f"{where}: rope type {rope_type!r} needs a 'factor'")
    if rope_type == "linear":
        return RopeScaling(theta=float(theta), type="linear", factor=float(scaling["factor"]))
    need = ("low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    absent = [k for k in need if k not in scaling]
    if absent:
        raise ModelLoadError(f"{where}: rope type 'llama3' needs {absent}")
    return RopeScaling(
        theta=float(theta),
        type="llama3",
        factor=float(scaling["factor"]),
        low_freq_factor=float(scaling["low_freq_factor"]),
        high_freq_factor=float(scaling["high_freq_factor"]),
        original_max_position_embeddings=int(scaling["original_max_position_embeddings"]),
    )
