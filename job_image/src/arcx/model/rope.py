"""Rotary position embeddings: inverse frequencies on the host, cos/sin tables in the trace.

The inverse frequencies are computed once per config in numpy, outside any traced function,
in the order of operations transformers uses (``_compute_*_rope_parameters``), so the
angles ``position * inv_freq`` match its float32 products. Computed under ``jit`` instead,
XLA's float32 ``pow`` lands one ulp away for some dimensions, which grows to ~1e-4 in the
activations at 4k positions. ``base ** exponent`` is evaluated in float64 and rounded once
to float32 (PyTorch evaluates it in float32 with a 1-ulp kernel; the two agree on every
entry of the shapes the parity tests use and differ by one ulp in a few small entries of
some others, e.g. head_dim 128 at theta 1e6: an angle error below 1e-5 at 8k positions).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from arcx.model.config import ModelConfig

_F32 = np.float32


def inverse_frequencies(cfg: ModelConfig) -> np.ndarray:
    """float32 [head_dim / 2], as transformers' rope init function for ``cfg.rope.type``."""
    rope, dim = cfg.rope, cfg.head_dim
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(_F32) / _F32(dim)
    powers = (np.float64(rope.theta) ** exponents.astype(np.float64)).astype(_F32)
    inv_freq = _F32(1.0) / powers
    if rope.type == "linear":
        inv_freq = inv_freq / _F32(rope.factor)
    elif rope.type == "llama3":
        inv_freq = _llama3(
            inv_freq,
            rope.factor,
            rope.low_freq_factor,
            rope.high_freq_factor,
            rope.original_max_position_embeddings,
        )
    return inv_freq.astype(_F32)


def _llama3(
    inv_freq: np.ndarray, factor: float, low: float, high: float, old_context: int
) -> np.ndarray:
    """Llama 3.1's frequency-dependent scaling, op for op in float32 as transformers does
    (PyTorch evaluates ``scalar / tensor`` as ``reciprocal(tensor) * scalar``)."""
    low_wavelen, high_wavelen = old_context / low, old_context / high
    wavelen = (_F32(1.0) / inv_freq) * _F32(2 * math.pi)
    scaled = np.where(wavelen > _F32(low_wavelen), inv_freq / _F32(factor), inv_freq)
    smooth = ((_F32(1.0) / wavelen) * _F32(old_context) - _F32(low)) / _F32(high - low)
    smoothed = (_F32(1.0) - smooth) * scaled / _F32(factor) + smooth * scaled
    medium = ~(wavelen < _F32(high_wavelen)) & ~(wavelen > _F32(low_wavelen))
    return np.where(medium, smoothed, scaled).astype(_F32)


def rope_tables(
    inv_freq: np.ndarray, positions: jax.Array, dtype: jnp.dtype
) -> tuple[jax.Array, jax.Array]:
    """cos and sin [B, T, head_dim] for integer positions [B, T]."""
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate-half RoPE on x [B, T, heads, head_dim] with tables [B, T, head_dim]."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]
