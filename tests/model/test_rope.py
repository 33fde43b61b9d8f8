"""RoPE inverse frequencies as transformers computes them, and parity at long positions."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from arc_rows import arc_prompt_ids

from arcx.model import Capture, ModelConfig, forward, load_model, make_mesh
from arcx.model.config import RopeScaling
from arcx.model.rope import inverse_frequencies

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.torch

ROPES = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 4.0},
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
}
# (head_dim, theta) of the parity tests' models and of real checkpoints: Qwen2.5-0.5B (64,
# 1e6), Llama-3 (128, 5e5); transformers' float32 pow and arcx's float64-then-rounded pow give
# identical tables for these.
EXACT = [(16, 1e4), (16, 1e6), (16, 100.0), (32, 1e6), (64, 1e6), (128, 5e5), (16, 5e5)]
OTHERS = [(64, 1e4), (128, 1e4), (128, 1e6), (96, 1e4), (80, 1234.5)]


def _hf_inv_freq(head_dim: int, theta: float, rope: dict) -> np.ndarray:
    cfg = transformers.LlamaConfig(
        hidden_size=head_dim * 2,
        num_attention_heads=2,
        head_dim=head_dim,
        max_position_embeddings=131072,
        rope_parameters={**rope, "rope_theta": theta},
    )
    return transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(cfg).inv_freq.numpy()


def _ours(head_dim: int, theta: float, rope: dict) -> np.ndarray:
    raw = {
        "model_type": "llama",
        "vocab_size": 64,
        "hidden_size": head_dim * 2,
        "intermediate_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "head_dim": head_dim,
        "rope_parameters": {**rope, "rope_theta": theta},
    }
    return inverse_frequencies(ModelConfig.from_dict(raw))


@pytest.mark.parametrize("rope", list(ROPES))
def test_inverse_frequencies_equal_transformers(rope):
    for head_dim, theta in EXACT:
        ours, want = _ours(head_dim, theta, ROPES[rope]), _hf_inv_freq(head_dim, theta, ROPES[rope])
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, want, err_msg=f"head_dim {head_dim} theta {theta}")
    for head_dim, theta in OTHERS:  # PyTorch's float32 pow is within 1 ulp, not always exact
        np.testing.assert_array_max_ulp(
            _ours(head_dim, theta, ROPES[rope]), _hf_inv_freq(head_dim, theta, ROPES[rope]), 1
        )


def test_llama3_scaling_touches_all_three_bands():
    """The tiny Llama's table has kept, interpolated and divided frequencies, so the parity
    tests exercise every branch of the scaling."""
    plain = _ours(16, 5e5, ROPES["default"])
    scaled = _ours(16, 5e5, ROPES["llama3"])
    kept = scaled == plain
    divided = np.isclose(scaled, plain / 8, rtol=1e-6)
    assert kept.any() and divided.any() and (~kept & ~divided).any()


def test_config_reads_llama3_scaling_from_both_layouts():
    base = {
        "model_type": "llama",
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    new = ModelConfig.from_dict({**base, "rope_parameters": {**ROPES["llama3"], "rope_theta": 5e5}})
    old = ModelConfig.from_dict({**base, "rope_theta": 5e5, "rope_scaling": ROPES["llama3"]})
    assert new == old
    assert new.rope == RopeScaling(5e5, "llama3", 8.0, 1.0, 4.0, 8192)
    assert dataclasses.replace(new, rope=RopeScaling(5e5)).rope.type == "default"


def test_4096_positions_match_transformers(family_dirs):
    """One ARC prompt of 4096+ tokens alone: the positions reach 4k, where an inverse frequency
    one ulp off would show as ~1e-4 in the activations."""
    d = family_dirs["qwen2"]
    lm = load_model(str(d), mesh=make_mesh())
    ids = arc_prompt_ids(lm.tokenizer, side=22, n_train=3, seed=7)
    assert len(ids) > 4096
    ids = np.asarray([ids], np.int32)
    n = lm.config.num_hidden_layers
    cap = Capture(("resid_post",), tuple(range(n)))
    ours = jax.jit(forward, static_argnames=("capture",))(
        lm.model,
        ids,
        segment_ids=np.ones_like(ids),
        positions=np.arange(ids.shape[1], dtype=np.int32)[None],
        capture=cap,
    )
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(d), dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(ids, dtype=torch.long), output_hidden_states=True)
    for i in range(n - 1):
        np.testing.assert_allclose(
            np.asarray(ours.activations[f"resid_post.{i}"]),
            out.hidden_states[i + 1].numpy(),
            atol=1e-4,
            rtol=0,
        )
    np.testing.assert_allclose(np.asarray(ours.logits), out.logits.numpy(), atol=1e-4, rtol=0)
