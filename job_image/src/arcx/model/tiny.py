"""A small random Qwen2 in Hugging Face layout: the embedded default model for the demo and tests.

``make_tiny_model`` writes ``config.json`` (transformers 5 layout), ``model.safetensors``,
``generation_config.json`` and the tiny tokenizer from :mod:`arcx.prompts.tiny_tokenizer`,
all made locally: nothing is downloaded. ``transformers.AutoTokenizer`` and
``Qwen2ForCausalLM.from_pretrained`` both read the directory.

Weights are scaled so activations stay O(1) and logits are well spread, so greedy choices
are not near-ties that float rounding could flip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

VOCAB_MULTIPLE = 64


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
) -> dict:
    """config.json for a Qwen2ForCausalLM, in transformers 5's layout (``rope_parameters``)."""
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
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
    d, inter = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config.get("head_dim") or d // heads
    v = config["vocab_size"]

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
        w[p + "self_attn.q_proj.weight"] = linear(heads * hd, d)
        w[p + "self_attn.q_proj.bias"] = vec(heads * hd, 0.0, 0.1)
        w[p + "self_attn.k_proj.weight"] = linear(kv * hd, d)
        w[p + "self_attn.k_proj.bias"] = vec(kv * hd, 0.0, 0.1)
        w[p + "self_attn.v_proj.weight"] = linear(kv * hd, d)
        w[p + "self_attn.v_proj.bias"] = vec(kv * hd, 0.0, 0.1)
        w[p + "self_attn.o_proj.weight"] = linear(d, heads * hd)
        w[p + "mlp.gate_proj.weight"] = linear(inter, d)
        w[p + "mlp.up_proj.weight"] = linear(inter, d)
        w[p + "mlp.down_proj.weight"] = linear(d, inter)
    w["model.norm.weight"] = vec(d, 1.0, 0.1)
    if not config["tie_word_embeddings"]:
        w["lm_head.weight"] = normal((v, d), 0.5)
    return w


def make_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    tie_word_embeddings: bool = True,
    rope_theta: float = 10000.0,
    max_position_embeddings: int = 4096,
) -> Path:
    """Write a random tiny Qwen2 with its tokenizer into ``out_dir``; return the directory."""
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
