"""Causal, segment-masked grouped-query attention behind one function, one implementation per backend.

Every implementation computes the same thing::

    o[b, i, h] = softmax_j( q[b, i, h] . k[b, j, h // G] / sqrt(hd) ) v[b, j, h // G]
    over the keys j with  kv_seg[b, j] == q_seg[b, i] != 0  and  kv_pos[b, j] <= q_pos[b, i]

(G = H // KV query heads share one key/value head). Segment id 0 marks padding: no real
query ever attends a padding key. A padding query's output is finite but otherwise
unspecified (zeros in ``reference`` and ``blocked``).

Implementations (``IMPLEMENTATIONS``):

- ``reference``: materialises the [B, H, Tq, Tk] fp32 scores. For tests and as the
  benchmark baseline only: its memory grows with T^2 per head.
- ``blocked``: plain JAX, the CPU choice and the fallback everywhere. Queries and keys are
  cut into blocks; per query block an online softmax runs over the key blocks with fp32
  accumulators. A key block with no visible key for any query of the block (the causal
  upper triangle, other segments, padding) is skipped under ``lax.switch`` without computing
  its scores, and one whose keys are all visible skips the masking. Peak memory is linear
  in T.
- ``splash``: the TPU Pallas kernel (``jax.experimental.pallas.ops.tpu.splash_attention``),
  causal mask plus segment ids, GQA as one MQA kernel per key/value head.
- ``flash``: the Pallas GPU (Triton) kernel ``jax.experimental.pallas.ops.gpu.attention.mha``
  with segment ids, key/value heads repeated to the query heads (it has no GQA).

The two kernels take causality from the array order of self-attention (Tq == Tk): they
equal the position rule above whenever positions increase along each segment, which holds
for every row arcx builds (left or right padding, packed rows with positions restarting at
0 per segment). They ignore ``q_positions``/``kv_positions``; ``auto`` therefore falls back
to ``blocked`` when Tq != Tk (a KV-cache step), where the positions matter.

On a backend without the kernel's hardware, ``splash`` and ``flash`` run in Pallas
interpret mode (slow, for tests). cuDNN through ``jax.nn.dot_product_attention`` is not
offered: its public API takes packed segments only as a dense [B, 1, T, T] mask, which it
turns into a bias, i.e. a T x T tensor per row.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from arcx.model.sharding import DATA, MODEL

IMPLEMENTATIONS = ("reference", "blocked", "splash", "flash")
CHOICES = ("auto", *IMPLEMENTATIONS)
AUTO = {"tpu": "splash", "gpu": "flash", "cuda": "flash", "rocm": "flash", "cpu": "blocked"}
KERNELS = ("splash", "flash")

# Block sizes measured with bench/attention.py (docs/model.md, "Attention implementations").
BLOCKED_BLOCK_Q = 256
BLOCKED_BLOCK_KV = 256
SPLASH_BLOCK = 512
FLASH_BLOCK_Q = 128
FLASH_BLOCK_KV = 128

_NO_MAX = -1e30  # running-max start: finite, so exp(m_old - m_new) never sees inf - inf


def resolve_impl(name: str, backend: str | None = None) -> str:
    """The implementation ``name`` (one of ``CHOICES``) means on ``backend`` (default: JAX's)."""
    if name not in CHOICES:
        raise ValueError(f"unknown attention implementation {name!r}; choose from {list(CHOICES)}")
    if name != "auto":
        return name
    backend = backend or jax.default_backend()
    return AUTO.get(backend, "blocked")


def attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_segment_ids: jax.Array,
    kv_segment_ids: jax.Array,
    *,
    impl: str = "auto",
    q_positions: jax.Array | None = None,
    kv_positions: jax.Array | None = None,
    block_q: int | None = None,
    block_kv: int | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """q [B, Tq, H, hd], k/v [B, Tk, KV, hd], segment ids int32 [B, T] -> [B, Tq, H, hd] in q.dtype.

    ``q_positions``/``kv_positions`` ([B, T] int32, default: the array index) order the
    causal mask; ``block_q``/``block_kv`` override the implementation's block sizes.
    ``mesh``: the (data, model) mesh the inputs are sharded over. The Pallas kernels cannot
    be partitioned by XLA, so with a mesh of several devices they run under ``shard_map``,
    rows split over ``data`` and key/value heads (with their query heads) over ``model``
    where those divide; without it XLA would gather their inputs onto every device.
    """
    b, tq, h, hd = q.shape
    bk, tk, kvh, hdk = k.shape
    if k.shape != v.shape or bk != b or hdk != hd:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} do not fit together")
    if h % kvh:
        raise ValueError(f"attention: {h} query heads are not a multiple of {kvh} key/value heads")
    if q_segment_ids.shape != (b, tq) or kv_segment_ids.shape != (b, tk):
        raise ValueError(
            f"attention: segment ids {q_segment_ids.shape}/{kv_segment_ids.shape} do not match "
            f"q {q.shape}/k {k.shape}"
        )
    name = resolve_impl(impl)
    if name in KERNELS and tq != tk:
        if impl != "auto":
            raise ValueError(
                f"attention: {name!r} is self-attention only (Tq == Tk), got Tq={tq}, Tk={tk}"
            )
        name = "blocked"
    if name == "reference":
        return reference_attention(
            q, k, v, q_segment_ids, kv_segment_ids, q_positions, kv_positions
        )
    if name == "blocked":
        return blocked_attention(
            q,
            k,
            v,
            q_segment_ids,
            kv_segment_ids,
            q_positions,
            kv_positions,
            block_q=block_q or BLOCKED_BLOCK_Q,
            block_kv=block_kv or BLOCKED_BLOCK_KV,
        )
    if name == "splash":
        kernel = functools.partial(
            splash_attention, block_q=block_q or SPLASH_BLOCK, block_kv=block_kv or SPLASH_BLOCK
        )
    else:
        kernel = functools.partial(
            _flash_self_attention,
            block_q=block_q or FLASH_BLOCK_Q,
            block_kv=block_kv or FLASH_BLOCK_KV,
        )
    if mesh is not None and mesh.size > 1:
        kernel = _per_shard(kernel, mesh, b, kvh)
    return kernel(q, k, v, q_segment_ids, kv_segment_ids)


def _per_shard(kernel, mesh: Mesh, batch: int, kv_heads: int):
    """``kernel`` under ``shard_map``: rows over ``data``, key/value heads over ``model``
    (each shard's query heads are exactly those of its key/value heads, as heads are split
    contiguously), an axis left whole where it does not divide."""

    def axis(name: str, size: int) -> str | None:
        n = mesh.shape.get(name, 1)
        return name if n > 1 and size % n == 0 else None

    data, model = axis(DATA, batch), axis(MODEL, kv_heads)
    heads, rows = PartitionSpec(data, None, model, None), PartitionSpec(data, None)
    return jax.shard_map(
        kernel,
        mesh=mesh,
        in_specs=(heads, heads, heads, rows, rows),
        out_specs=heads,
        check_vma=False,
    )


def _flash_self_attention(q, k, v, q_segment_ids, kv_segment_ids, *, block_q, block_kv):
    del kv_segment_ids  # the kernel takes one segment-id array (self-attention)
    return flash_attention(q, k, v, q_segment_ids, block_q=block_q, block_kv=block_kv)


def _positions(positions: jax.Array | None, b: int, t: int) -> jax.Array:
    if positions is None:
        return jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    return positions.astype(jnp.int32)


def visible(
    q_segment_ids: jax.Array,
    kv_segment_ids: jax.Array,
    q_positions: jax.Array,
    kv_positions: jax.Array,
) -> jax.Array:
    """[B, Tq, Tk] bool: which keys each query may attend (same non-zero segment, not later)."""
    same = q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]
    real = (kv_segment_ids != 0)[:, None, :]
    causal = q_positions[:, :, None] >= kv_positions[:, None, :]
    return same & real & causal


def reference_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_segment_ids: jax.Array,
    kv_segment_ids: jax.Array,
    q_positions: jax.Array | None = None,
    kv_positions: jax.Array | None = None,
) -> jax.Array:
    """The materialised path: fp32 scores and softmax over [B, KV, G, Tq, Tk]. Tests only."""
    b, tq, h, hd = q.shape
    tk, kvh = k.shape[1], k.shape[2]
    g = h // kvh
    mask = visible(
        q_segment_ids,
        kv_segment_ids,
        _positions(q_positions, b, tq),
        _positions(kv_positions, b, tk),
    )
    qg = q.reshape(b, tq, kvh, g, hd).astype(jnp.float32)
    s = jnp.einsum("bqkgd,bskd->bkgqs", qg, k.astype(jnp.float32)) * (hd**-0.5)
    s = jnp.where(mask[:, None, None], s, -jnp.inf)
    m = jnp.maximum(jnp.max(s, axis=-1, keepdims=True), _NO_MAX)
    p = jnp.exp(s - m)
    denom = jnp.sum(p, axis=-1, keepdims=True)
    p = p / jnp.where(denom > 0, denom, 1.0)
    o = jnp.einsum("bkgqs,bskd->bqkgd", p, v.astype(jnp.float32))
    return o.reshape(b, tq, h, hd).astype(q.dtype)


def _pad_to(x: jax.Array, axis: int, size: int) -> jax.Array:
    extra = size - x.shape[axis]
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths)


def blocked_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_segment_ids: jax.Array,
    kv_segment_ids: jax.Array,
    q_positions: jax.Array | None = None,
    kv_positions: jax.Array | None = None,
    *,
    block_q: int = BLOCKED_BLOCK_Q,
    block_kv: int = BLOCKED_BLOCK_KV,
) -> jax.Array:
    """Online-softmax attention over key blocks, one query block at a time (see the module doc).

    Layout: heads first, the G query heads of one key/value head stacked along the rows, so
    both products are plain batched matmuls [B, KV, G*bq, hd] x [B, KV, bk, hd].
    """
    b, tq, h, hd = q.shape
    tk, kvh = k.shape[1], k.shape[2]
    g = h // kvh
    bq, bk = min(block_q, tq), min(block_kv, tk)
    nq, nk = -(-tq // bq), -(-tk // bk)
    qpos = _pad_to(_positions(q_positions, b, tq), 1, nq * bq)
    kpos = _pad_to(_positions(kv_positions, b, tk), 1, nk * bk)
    qseg = _pad_to(q_segment_ids.astype(jnp.int32), 1, nq * bq)  # padded rows: segment 0
    kseg = _pad_to(kv_segment_ids.astype(jnp.int32), 1, nk * bk)
    acc_dtype = jnp.promote_types(q.dtype, jnp.float32)

    scale = jnp.asarray(hd**-0.5, q.dtype)
    # [nq, B, KV, G*bq, hd]: block i of the queries, heads of a group stacked along the rows
    qb = _pad_to(q * scale, 1, nq * bq).reshape(b, nq, bq, kvh, g, hd)
    qb = jnp.transpose(qb, (1, 0, 3, 4, 2, 5)).reshape(nq, b, kvh, g * bq, hd)
    # [nk, B, KV, bk, hd]
    kb = jnp.transpose(_pad_to(k, 1, nk * bk).reshape(b, nk, bk, kvh, hd), (1, 0, 3, 2, 4))
    vb = jnp.transpose(_pad_to(v, 1, nk * bk).reshape(b, nk, bk, kvh, hd), (1, 0, 3, 2, 4))
    qseg_b = jnp.transpose(qseg.reshape(b, nq, bq), (1, 0, 2))
    qpos_b = jnp.transpose(qpos.reshape(b, nq, bq), (1, 0, 2))
    kseg_b = jnp.transpose(kseg.reshape(b, nk, bk), (1, 0, 2))
    kpos_b = jnp.transpose(kpos.reshape(b, nk, bk), (1, 0, 2))

    def one_query_block(args: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        qi, qs, qp = args

        def step(j: jax.Array, carry: tuple[jax.Array, jax.Array, jax.Array]):
            mask = visible(qs, kseg_b[j], qp, kpos_b[j])  # [B, bq, bk]

            def attend(carry: tuple[jax.Array, jax.Array, jax.Array], masked: bool):
                m, den, acc = carry  # m, den [B, KV, G, bq]; acc [B, KV, G*bq, hd]
                s = jnp.einsum("bkqd,bksd->bkqs", qi, kb[j], preferred_element_type=acc_dtype)
                s = s.reshape(b, kvh, g, bq, bk)
                if masked:
                    s = jnp.where(mask[:, None, None], s, -jnp.inf)
                m_new = jnp.maximum(m, jnp.max(s, axis=-1))
                p = jnp.exp(s - m_new[..., None])
                corr = jnp.exp(m - m_new)
                den = den * corr + jnp.sum(p, axis=-1)
                pv = jnp.einsum(
                    "bkqs,bksd->bkqd",
                    p.reshape(b, kvh, g * bq, bk).astype(v.dtype),
                    vb[j],
                    preferred_element_type=acc_dtype,
                )
                acc = acc * corr.reshape(b, kvh, g * bq, 1) + pv
                return m_new, den, acc

            # 0: nothing visible (skip), 1: partly visible (mask the scores), 2: all visible
            kind = jnp.any(mask).astype(jnp.int32) + jnp.all(mask).astype(jnp.int32)
            branches = (
                lambda c: c,
                functools.partial(attend, masked=True),
                functools.partial(attend, masked=False),
            )
            return jax.lax.switch(kind, branches, carry)

        init = (
            jnp.full((b, kvh, g, bq), _NO_MAX, acc_dtype),
            jnp.zeros((b, kvh, g, bq), acc_dtype),
            jnp.zeros((b, kvh, g * bq, hd), acc_dtype),
        )
        _, den, acc = jax.lax.fori_loop(0, nk, step, init)
        den = den.reshape(b, kvh, g * bq, 1)
        return acc / jnp.where(den > 0, den, 1.0)

    out = jax.lax.map(one_query_block, (qb, qseg_b, qpos_b))  # [nq, B, KV, G*bq, hd]
    out = out.reshape(nq, b, kvh, g, bq, hd)
    out = jnp.transpose(out, (1, 0, 4, 2, 3, 5)).reshape(b, nq * bq, h, hd)
    return out[:, :tq].astype(q.dtype)


def _kernel_block(block: int, t: int, multiple: int) -> tuple[int, int]:
    """A block size (a multiple of ``multiple``, at most ``block``) and T padded to a multiple of it."""
    blk = min(block, -(-t // multiple) * multiple)
    return blk, -(-t // blk) * blk


@functools.lru_cache(maxsize=64)
def _splash_kernel(t: int, heads: int, block_q: int, block_kv: int, interpret: bool):
    from jax.experimental.pallas.ops.tpu import splash_attention as sa

    mask = sa.MultiHeadMask([sa.CausalMask((t, t)) for _ in range(heads)])
    sizes = sa.BlockSizes(block_q=block_q, block_kv=block_kv, block_kv_compute=block_kv)
    # The kernel holds its mask tables as arrays; made while tracing, they would be tracers,
    # and this cache would leak them into the next trace.
    with jax.ensure_compile_time_eval():
        return sa.make_splash_mqa_single_device(mask, block_sizes=sizes, interpret=interpret)


def splash_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_segment_ids: jax.Array,
    kv_segment_ids: jax.Array,
    *,
    block_q: int = SPLASH_BLOCK,
    block_kv: int = SPLASH_BLOCK,
    interpret: bool | None = None,
) -> jax.Array:
    """Splash attention (TPU), self-attention with causality by array index; see the module doc.

    One MQA kernel per key/value head (its G query heads share one K/V), vmapped over the
    key/value heads and the batch. T is padded to a multiple of the block with segment 0.
    """
    from jax.experimental.pallas.ops.tpu import splash_attention as sa

    b, t, h, hd = q.shape
    kvh = k.shape[2]
    g = h // kvh
    if interpret is None:
        interpret = jax.default_backend() != "tpu"
    bq, tp = _kernel_block(block_q, t, 128)
    bkv = min(block_kv, tp)
    if tp % bkv:
        bkv = bq
    kernel = _splash_kernel(tp, g, bq, bkv, bool(interpret))
    qseg = _pad_to(q_segment_ids.astype(jnp.int32), 1, tp)
    kvseg = _pad_to(kv_segment_ids.astype(jnp.int32), 1, tp)
    qh = jnp.transpose(_pad_to(q * jnp.asarray(hd**-0.5, q.dtype), 1, tp), (0, 2, 1, 3))
    qh = qh.reshape(b, kvh, g, tp, hd)
    kh = jnp.transpose(_pad_to(k, 1, tp), (0, 2, 1, 3))  # [B, KV, T, hd]
    vh = jnp.transpose(_pad_to(v, 1, tp), (0, 2, 1, 3))

    def one_row(qr: jax.Array, kr: jax.Array, vr: jax.Array, qs: jax.Array, ks: jax.Array):
        ids = sa.SegmentIds(q=qs, kv=ks)
        return jax.vmap(lambda a, c, d: kernel(a, c, d, segment_ids=ids))(qr, kr, vr)

    out = jax.vmap(one_row)(qh, kh, vh, qseg, kvseg)  # [B, KV, G, T, hd]
    out = jnp.transpose(out.reshape(b, h, tp, hd), (0, 2, 1, 3))
    return out[:, :t].astype(q.dtype)


def flash_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    segment_ids: jax.Array,
    *,
    block_q: int = FLASH_BLOCK_Q,
    block_kv: int = FLASH_BLOCK_KV,
    interpret: bool | None = None,
) -> jax.Array:
    """The Pallas GPU flash kernel, self-attention with causality by array index.

    The kernel takes one segment-id array for queries and keys: ``attention`` passes the
    query's (self-attention, where the two are the same).

    The kernel has no GQA, so each key/value head is repeated to its G query heads (memory
    linear in T). T is padded to a multiple of the blocks with segment 0.
    """
    from jax.experimental.pallas.ops.gpu import attention as gpu_attention

    t, h, hd = q.shape[1:]
    g = h // k.shape[2]
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    step = math.lcm(block_q, block_kv)
    tp = -(-t // step) * step
    bq, bkv = min(block_q, tp), min(block_kv, tp)
    seg = _pad_to(segment_ids.astype(jnp.int32), 1, tp)
    kr = jnp.repeat(_pad_to(k, 1, tp), g, axis=2) if g > 1 else _pad_to(k, 1, tp)
    vr = jnp.repeat(_pad_to(v, 1, tp), g, axis=2) if g > 1 else _pad_to(v, 1, tp)
    out = gpu_attention.mha(
        _pad_to(q, 1, tp),
        kr,
        vr,
        seg,
        sm_scale=float(hd**-0.5),
        causal=True,
        block_sizes=gpu_attention.BlockSizes(block_q=bq, block_k=bkv),
        interpret=bool(interpret),
    )
    return out[:, :t].astype(q.dtype)
