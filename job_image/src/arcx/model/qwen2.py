"""The Qwen2 / Qwen2.5 decoder in Flax NNX, with activation capture and a KV-cache step.

Numerics follow transformers' ``Qwen2ForCausalLM``: RMSNorm in fp32 (the weight multiplies
after casting back), rotate-half RoPE with the config's theta, grouped-query attention
with the softmax in fp32, q/k/v biases and no o_proj bias, a SwiGLU MLP, and a tied or
separate LM head.

Weights are stored input-major (``x @ kernel``), i.e. transposed from PyTorch's
``nn.Linear.weight``; ``params.py`` holds the name and layout table.

Positions come from the attention mask (``cumsum(mask) - 1``), so left- and right-padded
batches give real tokens the same positions as without padding. Attention is causal over
*slots* (array indices) and masked by key validity, so padding anywhere is ignored.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from arcx.model.config import Qwen2Config
from arcx.model.errors import ModelLoadError

SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_MASKED = -1e30  # added in fp32 before the softmax; finite so fully masked rows stay finite


def jnp_dtype(name: str) -> jnp.dtype:
    try:
        return jnp.dtype(_DTYPES[name])
    except KeyError:
        raise ModelLoadError(f"unsupported dtype {name!r}; use one of {sorted(_DTYPES)}") from None


@dataclasses.dataclass(frozen=True)
class Capture:
    """Which activations a forward pass returns: every site in ``sites`` at every layer in ``layers``."""

    sites: tuple[str, ...] = ()
    layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", tuple(self.sites))
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        bad = [s for s in self.sites if s not in SITES]
        if bad:
            raise ValueError(f"unknown capture site(s) {bad}; choose from {list(SITES)}")
        if any(x < 0 for x in self.layers):
            raise ValueError(f"capture layers must be >= 0, got {list(self.layers)}")

    def check(self, config: Qwen2Config) -> None:
        """Raise ValueError if a layer is outside the model."""
        n = config.num_hidden_layers
        out = [x for x in self.layers if x >= n]
        if out:
            raise ValueError(
                f"capture layer(s) {out} out of range: the model has {n} layers, numbered 0..{n - 1}"
            )

    def keys(self) -> list[str]:
        return [f"{site}.{layer}" for layer in self.layers for site in self.sites]

    def wants(self, site: str, layer: int) -> bool:
        return site in self.sites and layer in self.layers


class ForwardOutput(NamedTuple):
    logits: jax.Array  # [B, T, V] float32 (or [B, K, V] at the requested positions)
    activations: dict[str, jax.Array]  # "<site>.<layer>" -> [B, T, D] in the model dtype


class LayerCache(NamedTuple):
    k: jax.Array  # [B, S, KV, hd]
    v: jax.Array  # [B, S, KV, hd]


def _zeros(shape: tuple[int, ...], dtype: jnp.dtype) -> nnx.Param:
    return nnx.Param(jnp.zeros(shape, dtype))


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, dtype: jnp.dtype):
        self.weight = _zeros((dim,), dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.astype(jnp.float32)
        h = h * jax.lax.rsqrt(jnp.mean(h * h, axis=-1, keepdims=True) + self.eps)
        return self.weight[...] * h.astype(x.dtype)


class Attention(nnx.Module):
    def __init__(self, cfg: Qwen2Config, dtype: jnp.dtype):
        d, hd = cfg.hidden_size, cfg.head_dim
        self.n_heads, self.n_kv, self.head_dim = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            hd,
        )
        self.q_kernel = _zeros((d, self.n_heads * hd), dtype)
        self.q_bias = _zeros((self.n_heads * hd,), dtype)
        self.k_kernel = _zeros((d, self.n_kv * hd), dtype)
        self.k_bias = _zeros((self.n_kv * hd,), dtype)
        self.v_kernel = _zeros((d, self.n_kv * hd), dtype)
        self.v_bias = _zeros((self.n_kv * hd,), dtype)
        self.o_kernel = _zeros((self.n_heads * hd, d), dtype)

    def project_kv(
        self, x: jax.Array, cos: jax.Array, sin: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        b, t, _ = x.shape
        q = (x @ self.q_kernel[...] + self.q_bias[...]).reshape(b, t, self.n_heads, self.head_dim)
        k = (x @ self.k_kernel[...] + self.k_bias[...]).reshape(b, t, self.n_kv, self.head_dim)
        v = (x @ self.v_kernel[...] + self.v_bias[...]).reshape(b, t, self.n_kv, self.head_dim)
        return _rotate(q, cos, sin), _rotate(k, cos, sin), v

    def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
        """q [B,Tq,H,hd], k/v [B,Tk,KV,hd], mask [B,Tq,Tk] bool -> o_proj output [B,Tq,D].

        Heads-first layout with the query heads of one KV group stacked along the rows, so
        both products are plain batched matmuls (on CPU about twice as fast as grouped
        5-d einsums). The softmax runs in fp32 as in transformers.
        """
        b, tq, _, hd = q.shape
        groups = self.n_heads // self.n_kv
        q = q * jnp.asarray(hd**-0.5, q.dtype)
        qh = jnp.transpose(q, (0, 2, 1, 3)).reshape(b, self.n_kv, groups * tq, hd)
        kh, vh = jnp.transpose(k, (0, 2, 1, 3)), jnp.transpose(v, (0, 2, 1, 3))
        scores = jnp.einsum("bkqd,bksd->bkqs", qh, kh).reshape(b, self.n_kv, groups, tq, -1)
        scores = jnp.where(mask[:, None, None], scores.astype(jnp.float32), _MASKED)
        probs = (
            jax.nn.softmax(scores, axis=-1).astype(v.dtype).reshape(b, self.n_kv, groups * tq, -1)
        )
        out = jnp.einsum("bkqs,bksd->bkqd", probs, vh).reshape(b, self.n_heads, tq, hd)
        out = jnp.transpose(out, (0, 2, 1, 3)).reshape(b, tq, self.n_heads * hd)
        return out @ self.o_kernel[...]


class MLP(nnx.Module):
    def __init__(self, cfg: Qwen2Config, dtype: jnp.dtype):
        d, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_kernel = _zeros((d, i), dtype)
        self.up_kernel = _zeros((d, i), dtype)
        self.down_kernel = _zeros((i, d), dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.silu(x @ self.gate_kernel[...]) * (x @ self.up_kernel[...])
        return h @ self.down_kernel[...]


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: Qwen2Config, dtype: jnp.dtype):
        self.input_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype)
        self.attn = Attention(cfg, dtype)
        self.post_attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype)
        self.mlp = MLP(cfg, dtype)

    def __call__(
        self,
        x: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        mask: jax.Array,
        cache: LayerCache | None = None,
        write_at: jax.Array | None = None,
    ) -> tuple[dict[str, jax.Array], LayerCache]:
        """One block. Without a cache, attends over this call's keys; with one, writes this
        call's keys at slot ``write_at`` and attends over the whole cache."""
        q, k, v = self.attn.project_kv(self.input_norm(x), cos, sin)
        if cache is not None:
            k = jax.lax.dynamic_update_slice_in_dim(cache.k, k.astype(cache.k.dtype), write_at, 1)
            v = jax.lax.dynamic_update_slice_in_dim(cache.v, v.astype(cache.v.dtype), write_at, 1)
        attn_out = self.attn.attend(q, k, v, mask)
        mid = x + attn_out
        mlp_out = self.mlp(self.post_attn_norm(mid))
        post = mid + mlp_out
        sites = {
            "resid_pre": x,
            "attn_out": attn_out,
            "resid_mid": mid,
            "mlp_out": mlp_out,
            "resid_post": post,
        }
        return sites, LayerCache(k, v)


class Qwen2ForCausalLM(nnx.Module):
    """Parameters of a Qwen2 causal LM. Build with :func:`abstract_model` and fill from a checkpoint."""

    def __init__(self, cfg: Qwen2Config, dtype: jnp.dtype = jnp.float32):
        self.config = cfg
        self.dtype = jnp.dtype(dtype)
        self.embed = _zeros((cfg.vocab_size, cfg.hidden_size), dtype)
        self.layers = nnx.List([DecoderLayer(cfg, dtype) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype)
        self.lm_head = (
            None if cfg.tie_word_embeddings else _zeros((cfg.hidden_size, cfg.vocab_size), dtype)
        )

    def logits(self, h: jax.Array) -> jax.Array:
        h = self.norm(h)
        if self.lm_head is None:
            out = jnp.einsum("btd,vd->btv", h, self.embed[...])
        else:
            out = h @ self.lm_head[...]
        return out.astype(jnp.float32)


def abstract_model(cfg: Qwen2Config, dtype: str = "float32") -> Qwen2ForCausalLM:
    """The module with shape-only parameters (no memory); ``params.py`` fills in real arrays."""
    dt = jnp_dtype(dtype)
    return nnx.eval_shape(lambda: Qwen2ForCausalLM(cfg, dt))


def _rotate_half(x: jax.Array) -> jax.Array:
    half = x.shape[-1] // 2
    return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def _rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    return x * cos[:, :, None, :] + _rotate_half(x) * sin[:, :, None, :]


def rope_tables(
    cfg: Qwen2Config, positions: jax.Array, dtype: jnp.dtype
) -> tuple[jax.Array, jax.Array]:
    """cos and sin [B, T, head_dim] for integer positions [B, T], as transformers computes them."""
    dim = cfg.head_dim
    exponents = jnp.arange(0, dim, 2, dtype=jnp.float32) / dim
    inv_freq = 1.0 / (cfg.rope_theta**exponents)
    if cfg.rope_type == "linear":
        inv_freq = inv_freq / cfg.rope_factor
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
    """Position of each real token among the real tokens of its row; 0 at padding."""
    return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)


def forward(
    model: Qwen2ForCausalLM,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    capture: Capture = Capture(),
    *,
    logit_positions: jax.Array | None = None,
) -> ForwardOutput:
    """Logits and the captured activations for a padded batch (left or right padding).

    ``logit_positions`` ([B, K] int32), when given, computes logits only at those positions
    ([B, K, V]) instead of everywhere; useful with large vocabularies. Jit-compatible: the
    capture request and shapes are static, the module is a pytree.
    """
    capture.check(model.config)
    x, cos, sin, mask = _prefill_inputs(model, input_ids, attention_mask)
    acts: dict[str, jax.Array] = {}
    for i, layer in enumerate(model.layers):
        sites, _ = layer(x, cos, sin, mask)
        if i in capture.layers:
            acts.update({f"{site}.{i}": sites[site] for site in capture.sites})
        x = sites["resid_post"]
    if logit_positions is not None:
        x = jnp.take_along_axis(x, logit_positions[..., None].astype(jnp.int32), axis=1)
    return ForwardOutput(model.logits(x), acts)


def _prefill_inputs(
    model: Qwen2ForCausalLM, input_ids: jax.Array, attention_mask: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    cfg = model.config
    t = input_ids.shape[1]
    x = jnp.take(model.embed[...], input_ids, axis=0)
    cos, sin = rope_tables(cfg, positions_from_mask(attention_mask), model.dtype)
    causal = jnp.tril(jnp.ones((t, t), dtype=bool))
    mask = causal[None] & (attention_mask[:, None, :] > 0)
    return x, cos, sin, mask


def prefill(
    model: Qwen2ForCausalLM, input_ids: jax.Array, attention_mask: jax.Array, cache_len: int
) -> tuple[jax.Array, list[LayerCache]]:
    """Run the prompt; return the final hidden states [B,T,D] and a cache of ``cache_len`` slots
    whose first T slots hold the prompt's keys and values."""
    t = input_ids.shape[1]
    x, cos, sin, mask = _prefill_inputs(model, input_ids, attention_mask)
    caches = []
    for layer in model.layers:
        sites, kv = layer(x, cos, sin, mask)
        x = sites["resid_post"]
        pad = ((0, 0), (0, cache_len - t), (0, 0), (0, 0))
        caches.append(LayerCache(jnp.pad(kv.k, pad), jnp.pad(kv.v, pad)))
    return x, caches


def decode_step(
    model: Qwen2ForCausalLM,
    token: jax.Array,
    position: jax.Array,
    slot: jax.Array,
    key_valid: jax.Array,
    caches: list[LayerCache],
) -> tuple[jax.Array, list[LayerCache]]:
    """One token per row: ``token`` [B] at ``position`` [B], written at cache slot ``slot`` (a
    scalar, the same for every row). ``key_valid`` [B, S] marks the slots that hold real
    tokens. Returns the logits [B, V] and the updated caches."""
    x = jnp.take(model.embed[...], token[:, None], axis=0)
    cos, sin = rope_tables(model.config, position[:, None], model.dtype)
    s = key_valid.shape[1]
    mask = (key_valid & (jnp.arange(s) <= slot)[None])[:, None, :]
    new_caches = []
    for layer, cache in zip(model.layers, caches, strict=True):
        sites, kv = layer(x, cos, sin, mask, cache=cache, write_at=slot)
        x = sites["resid_post"]
        new_caches.append(kv)
    return model.logits(x)[:, 0], new_caches
