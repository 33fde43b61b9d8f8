"""A small random decoder in Hugging Face layout: the embedded default model for the demo and tests.

``make_tiny_model`` writes ``config.json`` (transformers 5 layout), ``model.safetensors``,
``generation_config.json`` and the tiny tokenizer from :mod:`arcx.prompts.tiny_tokenizer`,
all made locally: nothing is downloaded. ``transformers.AutoTokenizer`` and the family's
``*ForCausalLM.from_pretrained`` both read the directory. The family is ``model_type``
(``qwen2`` by default, ``qwen3`` or ``llama``); each gets its own distinguishing features
by default (Qwen3: head_dim 32 != hidden / heads; Llama: ``llama3`` RoPE scaling).

Weights are scaled so activations stay O(1) and logits are well spread, so greedy choices
are not near-ties that float rounding could flip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from arcx.model.config import FAMILIES, ModelConfig

VOCAB_MULTIPLE = 64

# Llama 3.1's rotary scaling (factor 8 past 8192 positions); with head_dim 16 and theta 5e5 the
# tiny model has frequencies in all three of its regimes (kept, interpolated, divided).
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
# What make_tiny_model gives each family unless told otherwise.
FAMILY_DEFAULTS: dict[str, dict] = {
    "qwen2": {},
    "qwen3": {"head_dim": 32, "rope_theta": 1_000_000.0},
    "llama": {"rope_parameters": LLAMA3_ROPE, "max_position_embeddings": 131072},
}


def tiny_config(
    *,
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    tie_word_embeddings: bool,
    rope_theta: float,
    max_position_embeddings: int,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    model_type: str = "qwen2",
    head_dim: int | None = None,
    rope_parameters: dict | None = None,
) -> dict:
    """config.json for a ``model_type`` family, in transformers 5's layout (``rope_parameters``)."""
    if model_type not in FAMILIES:
        raise ValueError(f"unknown model_type {model_type!r}; choose from {list(FAMILIES)}")
    rope = rope_parameters or {"rope_type": "default", "rope_theta": rope_theta}
    extra: dict = {"attention_bias": False} if model_type != "qwen2" else {}
    if model_type == "llama":
        extra["mlp_bias"] = False
    if head_dim is not None:
        extra["head_dim"] = head_dim
    return {
        "architectures": [FAMILIES[model_type].architecture],
        "model_type": model_type,
        **extra,
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_parameters": rope,
        "tie_word_embeddings": tie_word_embeddings,
        "use_sliding_window": False,
        "sliding_window": None,
        "attention_dropout": 0.0,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
        "dtype": "float32",
    }


def random_weights(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 tensors under their HF names and shapes for ``config``."""
    rng = np.random.default_rng(seed)
    cfg = ModelConfig.from_dict(config)
    d, inter = cfg.hidden_size, cfg.intermediate_size
    heads, kv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    v = cfg.vocab_size

    def normal(shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
        x = rng.standard_normal(shape, dtype=np.float32)
        x *= np.float32(std)
        x += np.float32(mean)
        return x

    def linear(out_dim: int, in_dim: int) -> np.ndarray:
        return normal((out_dim, in_dim), in_dim**-0.5)

    def vec(n: int, mean: float, std: float) -> np.ndarray:
        return normal((n,), std, mean)

    w = {"model.embed_tokens.weight": normal((v, d), 0.5)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = vec(d, 1.0, 0.1)
        w[p + "post_attention_layernorm.weight"] = vec(d, 1.0, 0.1)
        # drawn in this order so a Qwen2's weights stay what they were before other families
        for name, width in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            w[p + f"self_attn.{name}_proj.weight"] = linear(width, d)
            if cfg.qkv_bias:
                w[p + f"self_attn.{name}_proj.bias"] = vec(width, 0.0, 0.1)
        w[p + "self_attn.o_proj.weight"] = linear(d, heads * hd)
        if cfg.o_bias:
            w[p + "self_attn.o_proj.bias"] = vec(d, 0.0, 0.1)
        if cfg.qk_norm:
            w[p + "self_attn.q_norm.weight"] = vec(hd, 1.0, 0.1)
            w[p + "self_attn.k_norm.weight"] = vec(hd, 1.0, 0.1)
        w[p + "mlp.gate_proj.weight"] = linear(inter, d)
        w[p + "mlp.up_proj.weight"] = linear(inter, d)
        w[p + "mlp.down_proj.weight"] = linear(d, inter)
    w["model.norm.weight"] = vec(d, 1.0, 0.1)
    if not cfg.tie_word_embeddings:
        w["lm_head.weight"] = normal((v, d), 0.5)
    return w


def make_tiny_model(
    out_dir: str | Path,
    *,
    model_type: str = "qwen2",
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    tie_word_embeddings: bool = True,
    rope_theta: float | None = None,
    head_dim: int | None = None,
    rope_parameters: dict | None = None,
    max_position_embeddings: int | None = None,
) -> Path:
    """Write a random tiny ``model_type`` decoder and its tokenizer into ``out_dir``; return it.

    ``head_dim``, ``rope_theta``, ``rope_parameters`` and ``max_position_embeddings`` default
    to the family's :data:`FAMILY_DEFAULTS` (theta 1e4 and 4096 positions otherwise)."""
    if model_type not in FAMILIES:
        raise ValueError(f"unknown model_type {model_type!r}; choose from {list(FAMILIES)}")
    defaults = FAMILY_DEFAULTS[model_type]
    head_dim = head_dim if head_dim is not None else defaults.get("head_dim")
    if rope_parameters is None and rope_theta is None:
        rope_parameters = defaults.get("rope_parameters")
    if rope_theta is None:
        rope_theta = defaults.get("rope_theta", 10000.0)
    if max_position_embeddings is None:
        max_position_embeddings = defaults.get("max_position_embeddings", 4096)
    from arcx.prompts.tiny_tokenizer import IM_END, PAD_TOKEN, build_tiny_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_tiny_tokenizer(out)
    vocab = json.loads((out / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in vocab["added_tokens"]}
    n_tokens = max([*vocab["model"]["vocab"].values(), *ids.values()]) + 1
    vocab_size = -(-n_tokens // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    pad, eos = ids[PAD_TOKEN], ids[IM_END]
    config = tiny_config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        tie_word_embeddings=tie_word_embeddings,
        rope_theta=rope_theta,
        max_position_embeddings=max_position_embeddings,
        model_type=model_type,
        head_dim=head_dim,
        rope_parameters=rope_parameters,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    generation = {
        "bos_token_id": pad,
        "eos_token_id": [eos, pad],
        "pad_token_id": pad,
        "do_sample": False,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    save_file(
        random_weights(config, seed), str(out / "model.safetensors"), metadata={"format": "pt"}
    )
    return out
