"""The decoder in Flax NNX (Qwen2, Qwen3, Llama), with activation capture and a KV-cache step.

Numerics follow transformers' ``Qwen2ForCausalLM``, ``Qwen3ForCausalLM`` and
``LlamaForCausalLM``, which share one block: RMSNorm in fp32 (the weight multiplies after
casting back), rotate-half RoPE (``rope.py``), grouped-query attention with the softmax in
fp32 (``attention.py``), a SwiGLU MLP, a tied or separate LM head. The families differ in
three switches of :class:`~arcx.model.config.ModelConfig`: q/k/v biases (Qwen2), an o_proj
bias (``attention_bias``), and RMSNorm over head_dim on q and k before RoPE (Qwen3).

Weights are stored input-major (``x @ kernel``), i.e. transposed from PyTorch's
``nn.Linear.weight``; ``params.py`` holds the name and layout table. The layers' parameters
are stacked along a leading layer axis and the layers run under ``lax.scan``, so the
program (and its compile time) does not grow with depth.

Rows are packed: ``segment_ids`` [B, T] (0 = padding) say which sequence a token belongs
to, ``positions`` [B, T] restart at 0 per sequence. Attention is causal by position within a
segment and never crosses one, so each sequence of a packed row sees exactly what it would
see alone. A padded batch (``attention_mask``) is the special case of one segment per row
with positions ``cumsum(mask) - 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from arcx_store.dtypes import EXTRACTION, numpy_dtype
from flax import nnx
from jax.sharding import Mesh

from arcx.model import attention as attn_lib
from arcx.model.config import ModelConfig
from arcx.model.errors import ModelLoadError
from arcx.model.rope import inverse_frequencies, rope_tables, rotate

SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")


def jnp_dtype(name: str) -> jnp.dtype:
    """``bfloat16`` -> its JAX dtype, from the store's one dtype table (ml_dtypes' bf16 is JAX's)."""
    try:
        return jnp.dtype(numpy_dtype(name))
    except KeyError:
        raise ModelLoadError(
            f"unsupported dtype {name!r}; use one of {sorted(EXTRACTION)}"
        ) from None


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

    def check(self, config: ModelConfig) -> None:
        """Raise ValueError if a layer is outside the model."""
        n = config.num_hidden_layers
        out = [x for x in self.layers if x >= n]
        if out:
            raise ValueError(
                f"capture layer(s) {out} out of range: the model has {n} layers, numbered 0..{n - 1}"
            )

    def depth(self) -> int:
        """How many layers must run to produce every captured site (0 when none is captured)."""
        return max(self.layers) + 1 if self.sites and self.layers else 0


class ForwardOutput(NamedTuple):
    logits: (
        jax.Array | None
    )  # [B, T, V] float32 ([B, K, V] at logit_positions); None if not computed
    activations: dict[str, jax.Array]  # "<site>.<layer>" -> [B, T, D] in the model dtype


class Cache(NamedTuple):
    """Keys and values of every layer, stacked: [L, B, S, KV, hd] each."""

    k: jax.Array
    v: jax.Array


class Rows(NamedTuple):
    """Per-token layout of the rows one call attends over (see the module docstring)."""

    segment_ids: jax.Array  # [B, T] int32, 0 = padding
    positions: jax.Array  # [B, T] int32, RoPE positions, restarting per segment


def _zeros(shape: tuple[int, ...], dtype: jnp.dtype) -> nnx.Param:
    return nnx.Param(jnp.zeros(shape, dtype))


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, dtype: jnp.dtype, lead: tuple[int, ...] = ()):
        self.weight = _zeros((*lead, dim), dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.astype(jnp.float32)
        h = h * jax.lax.rsqrt(jnp.mean(h * h, axis=-1, keepdims=True) + self.eps)
        return self.weight[...] * h.astype(x.dtype)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, dtype: jnp.dtype, lead: tuple[int, ...] = ()):
        d, hd = cfg.hidden_size, cfg.head_dim
        self.n_heads, self.n_kv, self.head_dim = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            hd,
        )
        q, kv = self.n_heads * hd, self.n_kv * hd
        self.q_kernel = _zeros((*lead, d, q), dtype)
        self.k_kernel = _zeros((*lead, d, kv), dtype)
        self.v_kernel = _zeros((*lead, d, kv), dtype)
        self.o_kernel = _zeros((*lead, q, d), dtype)
        self.q_bias = _zeros((*lead, q), dtype) if cfg.qkv_bias else None
        self.k_bias = _zeros((*lead, kv), dtype) if cfg.qkv_bias else None
        self.v_bias = _zeros((*lead, kv), dtype) if cfg.qkv_bias else None
        self.o_bias = _zeros((*lead, d), dtype) if cfg.o_bias else None
        self.q_norm = RMSNorm(hd, cfg.rms_norm_eps, dtype, lead) if cfg.qk_norm else None
        self.k_norm = RMSNorm(hd, cfg.rms_norm_eps, dtype, lead) if cfg.qk_norm else None

    def project(
        self, x: jax.Array, cos: jax.Array, sin: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """q [B,T,H,hd], k and v [B,T,KV,hd], RoPE applied to q and k."""
        b, t, _ = x.shape

        def linear(kernel: nnx.Param, bias: nnx.Param | None, heads: int) -> jax.Array:
            y = x @ kernel[...]
            return (y if bias is None else y + bias[...]).reshape(b, t, heads, self.head_dim)

        q = linear(self.q_kernel, self.q_bias, self.n_heads)
        k = linear(self.k_kernel, self.k_bias, self.n_kv)
        v = linear(self.v_kernel, self.v_bias, self.n_kv)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return rotate(q, cos, sin), rotate(k, cos, sin), v

    def out(self, o: jax.Array) -> jax.Array:
        """o_proj of the attention output o [B,T,H,hd] -> [B,T,D]."""
        b, t = o.shape[:2]
        y = o.reshape(b, t, self.n_heads * self.head_dim) @ self.o_kernel[...]
        return y if self.o_bias is None else y + self.o_bias[...]


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, dtype: jnp.dtype, lead: tuple[int, ...] = ()):
        d, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_kernel = _zeros((*lead, d, i), dtype)
        self.up_kernel = _zeros((*lead, d, i), dtype)
        self.down_kernel = _zeros((*lead, i, d), dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.silu(x @ self.gate_kernel[...]) * (x @ self.up_kernel[...])
        return h @ self.down_kernel[...]


class DecoderLayer(nnx.Module):
    """One block; built with ``lead=(L,)`` it holds every layer's parameters stacked, and
    :func:`_layer_at` takes one layer out of it inside the scan."""

    def __init__(self, cfg: ModelConfig, dtype: jnp.dtype, lead: tuple[int, ...] = ()):
        self.input_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype, lead)
        self.attn = Attention(cfg, dtype, lead)
        self.post_attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype, lead)
        self.mlp = MLP(cfg, dtype, lead)

    def __call__(
        self,
        x: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        attend: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
    ) -> tuple[dict[str, jax.Array], jax.Array, jax.Array]:
        """The five sites, and this call's keys and values (for a cache)."""
        with jax.named_scope("attention"):
            q, k, v = self.attn.project(self.input_norm(x), cos, sin)
            attn_out = self.attn.out(attend(q, k, v))
        mid = x + attn_out
        with jax.named_scope("mlp"):
            mlp_out = self.mlp(self.post_attn_norm(mid))
        post = mid + mlp_out
        sites = {
            "resid_pre": x,
            "attn_out": attn_out,
            "resid_mid": mid,
            "mlp_out": mlp_out,
            "resid_post": post,
        }
        return sites, k, v


class CausalLM(nnx.Module):
    """Parameters of a decoder-only LM. Build with :func:`abstract_model`, fill from a checkpoint."""

    def __init__(self, cfg: ModelConfig, dtype: jnp.dtype = jnp.float32):
        self.config = cfg
        self.dtype = jnp.dtype(dtype)
        self.embed = _zeros((cfg.vocab_size, cfg.hidden_size), dtype)
        self.layers = DecoderLayer(cfg, dtype, lead=(cfg.num_hidden_layers,))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype)
        self.lm_head = (
            None if cfg.tie_word_embeddings else _zeros((cfg.hidden_size, cfg.vocab_size), dtype)
        )

    def logits(self, h: jax.Array) -> jax.Array:
        with jax.named_scope("lm_head"):
            h = self.norm(h)
            if self.lm_head is None:
                out = jnp.einsum("btd,vd->btv", h, self.embed[...])
            else:
                out = h @ self.lm_head[...]
            return out.astype(jnp.float32)


def abstract_model(cfg: ModelConfig, dtype: str = "float32") -> CausalLM:
    """The module with shape-only parameters (no memory); ``params.py`` fills in real arrays."""
    dt = jnp_dtype(dtype)
    return nnx.eval_shape(lambda: CausalLM(cfg, dt))


def _layer_at(graphdef: nnx.GraphDef, state: nnx.State, i: jax.Array) -> DecoderLayer:
    """Layer ``i`` of the stacked layers (a dynamic index, so one scan body serves all)."""
    return nnx.merge(graphdef, jax.tree.map(lambda p: p[i], state))


@dataclasses.dataclass(frozen=True)
class _Attend:
    """The attention call of one forward: the implementation and who may attend whom."""

    impl: str
    q_segment_ids: jax.Array
    kv_segment_ids: jax.Array
    q_order: jax.Array  # causality: a query sees keys of its segment with kv_order <= q_order
    kv_order: jax.Array
    mesh: Mesh | None = None  # the kernels run per shard under shard_map over it

    @classmethod
    def within(cls, impl: str, rows: Rows, mesh: Mesh | None = None) -> _Attend:
        """Self-attention over packed rows: causal by position within each segment."""
        return cls(impl, rows.segment_ids, rows.segment_ids, rows.positions, rows.positions, mesh)

    def __call__(self, q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
        return attn_lib.attention(
            q,
            k,
            v,
            self.q_segment_ids,
            self.kv_segment_ids,
            impl=self.impl,
            q_positions=self.q_order,
            kv_positions=self.kv_order,
            mesh=self.mesh,
        )


def rows_from_mask(attention_mask: jax.Array) -> Rows:
    """One segment per row; a real token's position is its index among the row's real tokens."""
    mask = jnp.asarray(attention_mask).astype(jnp.int32)
    positions = jnp.maximum(jnp.cumsum(mask, axis=-1) - 1, 0)
    return Rows((mask > 0).astype(jnp.int32), positions.astype(jnp.int32))


def _rows(
    attention_mask: jax.Array | None, segment_ids: jax.Array | None, positions: jax.Array | None
) -> Rows:
    if segment_ids is not None and positions is not None:
        if attention_mask is not None:
            raise ValueError("give either attention_mask or segment_ids and positions, not both")
        return Rows(jnp.asarray(segment_ids, jnp.int32), jnp.asarray(positions, jnp.int32))
    if attention_mask is None or segment_ids is not None or positions is not None:
        raise ValueError("give segment_ids and positions (packed rows), or an attention_mask")
    return rows_from_mask(attention_mask)


def forward(
    model: CausalLM,
    input_ids: jax.Array,
    attention_mask: jax.Array | None = None,
    capture: Capture = Capture(),
    *,
    segment_ids: jax.Array | None = None,
    positions: jax.Array | None = None,
    logit_positions: jax.Array | None = None,
    compute_logits: bool = True,
    attention_impl: str = "auto",
    unroll: int | bool = 1,
    mesh: Mesh | None = None,
) -> ForwardOutput:
    """Logits and the captured activations for packed rows (or a padded batch).

    ``segment_ids`` and ``positions`` ([B, T] int32) describe packed rows; a padded batch may
    pass ``attention_mask`` instead (left or right padding). ``logit_positions`` ([B, K]
    int32) computes logits only at those positions ([B, K, V]). With ``compute_logits=False``
    only layers ``0..max(capture.layers)`` run: no later layer, no final norm, no LM head, and
    ``logits`` is None. ``attention_impl`` names an implementation of
    :func:`arcx.model.attention.attention`. ``unroll`` is passed to the layer scan (``True``
    unrolls every layer, the old Python loop's compile behaviour; for benchmarks). ``mesh``:
    the (data, model) mesh the batch is sharded over; given one of several devices, the
    Pallas kernels (splash, flash) run per shard under ``shard_map`` instead of on inputs
    gathered onto every device (the blocked and reference paths ignore it: XLA partitions
    them).

    Jit-compatible: ``capture``, ``compute_logits``, ``attention_impl``, ``unroll`` and
    ``mesh`` are static, the module is a pytree.
    """
    cfg = model.config
    capture.check(cfg)
    rows = _rows(attention_mask, segment_ids, positions)
    depth = cfg.num_hidden_layers if compute_logits else capture.depth()
    x = _embed(model, input_ids)
    cos, sin = rope_tables(inverse_frequencies(cfg), rows.positions, model.dtype)
    attend = _Attend.within(attention_impl, rows, mesh)
    graphdef, state = nnx.split(model.layers)
    layers = sorted(set(capture.layers))
    slot = np.zeros(max(depth, 1), np.int32)
    keep = np.zeros(max(depth, 1), bool)
    for j, layer in enumerate(layers):
        slot[layer], keep[layer] = j, True
    buffers = {s: jnp.zeros((len(layers), *x.shape), x.dtype) for s in capture.sites if layers}

    def body(carry: tuple, xs: tuple) -> tuple:
        # Captured sites go into a carried [n_captured, B, T, D] buffer per site; a layer that is
        # not captured writes slot 0 back unchanged. The buffers are the size of the output, and
        # the scan keeps no per-layer stack of anything.
        h, bufs = carry
        i, s, k = xs
        with jax.named_scope("layer"):
            sites, _, _ = _layer_at(graphdef, state, i)(h, cos, sin, attend)
        bufs = {name: _write_slot(buf, sites[name], s, k) for name, buf in bufs.items()}
        return (sites["resid_post"], bufs), None

    if depth:
        xs = (
            jnp.arange(depth, dtype=jnp.int32),
            jnp.asarray(slot[:depth]),
            jnp.asarray(keep[:depth]),
        )
        (x, buffers), _ = jax.lax.scan(body, (x, buffers), xs, unroll=unroll)
    acts = {f"{s}.{layer}": buffers[s][j] for s in buffers for j, layer in enumerate(layers)}
    if not compute_logits:
        return ForwardOutput(None, acts)
    if logit_positions is not None:
        x = jnp.take_along_axis(x, logit_positions[..., None].astype(jnp.int32), axis=1)
    return ForwardOutput(model.logits(x), acts)


def _write_slot(buf: jax.Array, value: jax.Array, slot: jax.Array, keep: jax.Array) -> jax.Array:
    old = jax.lax.dynamic_index_in_dim(buf, slot, keepdims=False)
    new = jnp.where(keep, value.astype(buf.dtype), old)
    return jax.lax.dynamic_update_index_in_dim(buf, new, slot, 0)


def _embed(model: CausalLM, ids: jax.Array) -> jax.Array:
    return jnp.take(model.embed[...], jnp.asarray(ids, jnp.int32), axis=0)


def prefill(
    model: CausalLM,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    cache_len: int,
    *,
    attention_impl: str = "auto",
    mesh: Mesh | None = None,
) -> tuple[jax.Array, Cache]:
    """Run a padded prompt batch; return the final hidden states [B,T,D] and a cache of
    ``cache_len`` slots whose first T slots hold the prompt's keys and values. ``mesh`` as
    in :func:`forward`."""
    cfg = model.config
    t = input_ids.shape[1]
    rows = rows_from_mask(attention_mask)
    x = _embed(model, input_ids)
    cos, sin = rope_tables(inverse_frequencies(cfg), rows.positions, model.dtype)
    attend = _Attend.within(attention_impl, rows, mesh)
    graphdef, state = nnx.split(model.layers)

    def body(h: jax.Array, i: jax.Array) -> tuple:
        with jax.named_scope("layer"):
            sites, k, v = _layer_at(graphdef, state, i)(h, cos, sin, attend)
        return sites["resid_post"], (k, v)

    x, (k, v) = jax.lax.scan(body, x, jnp.arange(cfg.num_hidden_layers, dtype=jnp.int32))
    pad = ((0, 0), (0, 0), (0, cache_len - t), (0, 0), (0, 0))
    return x, Cache(jnp.pad(k, pad), jnp.pad(v, pad))


def decode_step(
    model: CausalLM,
    token: jax.Array,
    position: jax.Array,
    slot: jax.Array,
    key_valid: jax.Array,
    cache: Cache,
) -> tuple[jax.Array, Cache]:
    """One token per row: ``token`` [B] at ``position`` [B], written at cache slot ``slot`` (a
    scalar, the same for every row). ``key_valid`` [B, S] marks the slots that hold real
    tokens. Returns the logits [B, V] and the updated cache."""
    b, s = key_valid.shape
    x = _embed(model, token[:, None])
    cos, sin = rope_tables(inverse_frequencies(model.config), position[:, None], model.dtype)
    # The new token sees every valid slot up to its own; one query per row, so the
    # materialised scores [B, H, 1, S] are no bigger than the cache read.
    attend = _Attend(
        "reference",
        jnp.ones((b, 1), jnp.int32),
        key_valid.astype(jnp.int32),
        jnp.full((b, 1), slot, jnp.int32),
        jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s)),
    )
    graphdef, state = nnx.split(model.layers)

    def body(carry: tuple, i: jax.Array) -> tuple:
        h, ck, cv = carry
        layer = _layer_at(graphdef, state, i)

        def attend_cached(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
            nonlocal ck, cv
            ck = jax.lax.dynamic_update_slice(ck, k[None].astype(ck.dtype), (i, 0, slot, 0, 0))
            cv = jax.lax.dynamic_update_slice(cv, v[None].astype(cv.dtype), (i, 0, slot, 0, 0))
            return attend(q, ck[i], cv[i])

        with jax.named_scope("layer"):
            sites, _, _ = layer(h, cos, sin, attend_cached)
        return (sites["resid_post"], ck, cv), None

    (x, k, v), _ = jax.lax.scan(
        body, (x, cache.k, cache.v), jnp.arange(model.config.num_hidden_layers, dtype=jnp.int32)
    )
    return model.logits(x)[:, 0], Cache(k, v)
