"""Every attention implementation against a float64 numpy reference and the JAX reference.

Rows are packed: several segments per row with positions restarting at 0, padding (segment
0) at the end or in the middle, lengths that are not multiples of the block sizes, GQA.
Tolerances (docs/model.md, "Attention implementations"): fp32 inputs must agree with the
float64 reference to 2e-5 absolute (outputs are O(1) averages of unit-normal values; the
errors measured are below 1e-6, a factor 20 below); bf16 inputs to 2e-2 against the float64
reference of the same bf16-rounded inputs (measured 7.9e-3, as for the materialised
reference: bf16 keeps 8 significant bits, the probabilities are rounded once before the PV
product and the output, of magnitude up to ~3, once at the end).
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arcx.model import attention as attn

FP32_ATOL = 2e-5
BF16_ATOL = 2e-2


def numpy_reference(q, k, v, q_seg, kv_seg, q_pos=None, kv_pos=None, chunk: int = 512):
    """The attention rule in float64 numpy, written independently of arcx's JAX code."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b, tq, h, hd = q.shape
    tk, kvh = k.shape[1], k.shape[2]
    g = h // kvh
    q_pos = np.broadcast_to(np.arange(tq), (b, tq)) if q_pos is None else np.asarray(q_pos)
    kv_pos = np.broadcast_to(np.arange(tk), (b, tk)) if kv_pos is None else np.asarray(kv_pos)
    out = np.zeros((b, tq, h, hd))
    kk = np.repeat(k, g, axis=2)  # head i uses key/value head i // g
    vv = np.repeat(v, g, axis=2)
    for r in range(b):
        for lo in range(0, tq, chunk):
            sl = slice(lo, lo + chunk)
            ok = (q_seg[r, sl, None] == kv_seg[r, None, :]) & (kv_seg[r, None, :] != 0)
            ok &= q_pos[r, sl, None] >= kv_pos[r, None, :]
            cols = ok.any(axis=0)  # only keys some query of the chunk sees: fast on packed rows
            ok = ok[:, cols]
            qh = q[r, sl].transpose(1, 0, 2)  # [h, q, d]
            s = qh @ kk[r, cols].transpose(1, 2, 0) / math.sqrt(hd)  # [h, q, k]
            s = np.where(ok[None], s, -np.inf)
            m = s.max(axis=-1, keepdims=True) if ok.size else np.zeros((*s.shape[:-1], 1))
            p = np.where(ok[None], np.exp(s - np.where(np.isfinite(m), m, 0.0)), 0.0)
            den = p.sum(axis=-1, keepdims=True)
            p = p / np.where(den > 0, den, 1.0)
            out[r, sl] = (p @ vv[r, cols].transpose(1, 0, 2)).transpose(1, 0, 2)
    return out


def packed_row(lengths: list[int], total: int) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids (1, 2, ... per sequence, 0 after) and positions restarting per segment."""
    seg = np.zeros(total, np.int32)
    pos = np.zeros(total, np.int32)
    at = 0
    for i, n in enumerate(lengths):
        seg[at : at + n] = i + 1
        pos[at : at + n] = np.arange(n)
        at += n
    return seg, pos


def make_inputs(rows: list[list[int]], total: int, heads: int, kv_heads: int, hd: int, seed: int):
    rng = np.random.default_rng(seed)
    segs, poss = zip(*(packed_row(r, total) for r in rows), strict=True)
    b = len(rows)
    q = rng.standard_normal((b, total, heads, hd), dtype=np.float32)
    k = rng.standard_normal((b, total, kv_heads, hd), dtype=np.float32)
    v = rng.standard_normal((b, total, kv_heads, hd), dtype=np.float32)
    return q, k, v, np.stack(segs), np.stack(poss)


def real(seg: np.ndarray) -> np.ndarray:
    """[B, T, 1, 1] mask of the rows whose output is specified (not padding)."""
    return (seg != 0)[:, :, None, None]


def run(impl: str, q, k, v, seg, pos, **kw) -> np.ndarray:
    fn = jax.jit(
        lambda q, k, v, s, p: attn.attention(
            q, k, v, s, s, impl=impl, q_positions=p, kv_positions=p, **kw
        )
    )
    out = np.asarray(fn(q, k, v, seg, pos)).astype(np.float64)
    assert np.isfinite(out).all(), f"{impl}: non-finite output (padding rows included)"
    return out


# Two rows: three segments then padding; two segments filling the row exactly.
ROWS_SMALL = [[70, 1, 90], [150, 50]]
ROWS_ODD = [[333, 17, 290, 5], [640, 4]]  # 645/644 real of 700: not block multiples


@pytest.mark.parametrize("impl", ["reference", "blocked"])
@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (6, 1), (3, 3)])
def test_matches_float64_reference(impl: str, heads: int, kv_heads: int) -> None:
    q, k, v, seg, pos = make_inputs(ROWS_SMALL, 200, heads, kv_heads, 16, seed=heads)
    want = numpy_reference(q, k, v, seg, seg, pos, pos)
    got = run(impl, q, k, v, seg, pos, block_q=64, block_kv=32) if impl == "blocked" else None
    got = run(impl, q, k, v, seg, pos) if got is None else got
    err = np.abs(got - want) * real(seg)
    assert err.max() < FP32_ATOL, f"{impl} max abs error {err.max():.2e}"


@pytest.mark.parametrize("block_q,block_kv", [(128, 128), (64, 256), (512, 512), (1024, 96)])
def test_blocked_any_block_size(block_q: int, block_kv: int) -> None:
    q, k, v, seg, pos = make_inputs(ROWS_ODD, 700, 4, 2, 32, seed=3)
    want = numpy_reference(q, k, v, seg, seg, pos, pos)
    got = run("blocked", q, k, v, seg, pos, block_q=block_q, block_kv=block_kv)
    assert (np.abs(got - want) * real(seg)).max() < FP32_ATOL


def test_padding_in_the_middle_is_never_attended() -> None:
    """Segment 0 between two segments: changing the padding keys changes no real output."""
    q, k, v, seg, pos = make_inputs([[100, 100]], 256, 4, 2, 16, seed=4)
    seg[0, 100:140] = 0  # a hole inside segment 2's span
    out_a = run("blocked", q, k, v, seg, pos, block_q=64, block_kv=64)
    k2, v2 = k.copy(), v.copy()
    k2[0, 100:140] = 1e4
    v2[0, 100:140] = -1e4
    out_b = run("blocked", q, k2, v2, seg, pos, block_q=64, block_kv=64)
    np.testing.assert_array_equal(out_a * real(seg), out_b * real(seg))
    want = numpy_reference(q, k, v, seg, seg, pos, pos)
    assert (np.abs(out_a - want) * real(seg)).max() < FP32_ATOL


def test_packed_segment_equals_the_sequence_alone() -> None:
    """A sequence packed after another gives the outputs it gives alone in its own row."""
    q, k, v, seg, pos = make_inputs([[120, 200]], 320, 4, 2, 16, seed=5)
    packed = run("blocked", q, k, v, seg, pos, block_q=64, block_kv=64)[0, 120:]
    s_alone = np.ones((1, 200), np.int32)
    p_alone = np.arange(200, dtype=np.int32)[None]
    alone = run(
        "blocked", q[:, 120:], k[:, 120:], v[:, 120:], s_alone, p_alone, block_q=64, block_kv=64
    )[0]
    np.testing.assert_allclose(packed, alone, atol=FP32_ATOL, rtol=0)


def test_kv_cache_step_uses_positions() -> None:
    """Tq != Tk (one new token over a cache): causality comes from the positions."""
    rng = np.random.default_rng(6)
    q = rng.standard_normal((2, 1, 4, 16), dtype=np.float32)
    k = rng.standard_normal((2, 40, 2, 16), dtype=np.float32)
    v = rng.standard_normal((2, 40, 2, 16), dtype=np.float32)
    kv_seg = np.ones((2, 40), np.int32)
    kv_seg[1, :5] = 0  # left padding in row 1
    kv_pos = np.broadcast_to(np.arange(40, dtype=np.int32), (2, 40)).copy()
    q_seg = np.ones((2, 1), np.int32)
    q_pos = np.array([[25], [31]], np.int32)  # later slots are empty: must be ignored
    want = numpy_reference(q, k, v, q_seg, kv_seg, q_pos, kv_pos)
    for impl in ("reference", "blocked", "auto"):
        fn = jax.jit(
            lambda *a, impl=impl: attn.attention(
                *a[:5], impl=impl, q_positions=a[5], kv_positions=a[6], block_kv=16
            )
        )
        got = fn(q, k, v, q_seg, kv_seg, q_pos, kv_pos)
        assert np.abs(np.asarray(got) - want).max() < FP32_ATOL, impl


def test_bf16_within_tolerance() -> None:
    q, k, v, seg, pos = make_inputs(ROWS_ODD, 700, 4, 2, 64, seed=7)
    qb, kb, vb = (jnp.asarray(x, jnp.bfloat16) for x in (q, k, v))
    # the float64 reference of the bf16-rounded inputs: what is left is the implementation's
    want = numpy_reference(*(np.asarray(x, np.float32) for x in (qb, kb, vb)), seg, seg, pos, pos)
    fn = jax.jit(lambda *a: attn.attention(*a[:3], a[3], a[3], impl="blocked", block_q=256))
    got = fn(qb, kb, vb, seg)
    assert got.dtype == jnp.bfloat16
    err = np.abs(np.asarray(got, np.float64) - want) * real(seg)
    assert err.max() < BF16_ATOL, f"bf16 max abs error {err.max():.2e}"


@pytest.mark.slow
@pytest.mark.parametrize("total,rows", [(8192, [[4000, 3000, 1000]]), (5000, [[4321, 600]])])
def test_blocked_long_rows(total: int, rows: list[list[int]]) -> None:
    """Real ARC prompt lengths: one row of 8192 (and one not a block multiple), 2 heads."""
    q, k, v, seg, pos = make_inputs(rows, total, 2, 1, 64, seed=8)
    want = numpy_reference(q, k, v, seg, seg, pos, pos)
    got = run("blocked", q, k, v, seg, pos)
    assert (np.abs(got - want) * real(seg)).max() < FP32_ATOL


@pytest.mark.parametrize("impl", ["splash", "flash"])
def test_kernels_in_interpret_mode(impl: str) -> None:
    """The Pallas kernels (interpret mode on CPU) on packed rows with GQA and padding."""
    q, k, v, seg, pos = make_inputs([[100, 1, 90], [130, 60]], 200, 4, 2, 64, seed=9)
    want = numpy_reference(q, k, v, seg, seg, pos, pos)
    kw = dict(block_q=128, block_kv=128) if impl == "splash" else dict(block_q=32, block_kv=32)
    got = run(impl, q, k, v, seg, pos, **kw)
    err = np.abs(got - want) * real(seg)
    assert err.max() < FP32_ATOL, f"{impl} max abs error {err.max():.2e}"


def test_kernels_refuse_cross_attention() -> None:
    q = np.zeros((1, 1, 2, 16), np.float32)
    k = np.zeros((1, 8, 2, 16), np.float32)
    with pytest.raises(ValueError, match="self-attention only"):
        attn.attention(q, k, k, np.ones((1, 1), np.int32), np.ones((1, 8), np.int32), impl="flash")


def test_bad_shapes_are_refused() -> None:
    q = np.zeros((1, 8, 3, 16), np.float32)
    k = np.zeros((1, 8, 2, 16), np.float32)
    seg = np.ones((1, 8), np.int32)
    with pytest.raises(ValueError, match="3 query heads are not a multiple of 2"):
        attn.attention(q, k, k, seg, seg, impl="reference")
    with pytest.raises(ValueError, match="segment ids"):
        attn.attention(q[:, :, :2], k, k, seg[:, :4], seg, impl="reference")


def test_resolve_impl() -> None:
    assert attn.resolve_impl("auto", "cpu") == "blocked"
    assert attn.resolve_impl("auto", "tpu") == "splash"
    assert attn.resolve_impl("auto", "gpu") == "flash"
    assert attn.resolve_impl("reference", "tpu") == "reference"
    with pytest.raises(ValueError, match="unknown attention implementation 'fast'"):
        attn.resolve_impl("fast", "cpu")


def test_blocked_memory_is_linear_in_t() -> None:
    """The largest intermediate of the compiled program at most doubles when T doubles for
    ``blocked`` (key/value-sized tensors), and quadruples for ``reference`` (the scores):
    so the check can tell the two apart."""

    def largest(impl: str, t: int) -> int:
        q = jax.ShapeDtypeStruct((1, t, 4, 64), jnp.float32)
        k = jax.ShapeDtypeStruct((1, t, 2, 64), jnp.float32)
        s = jax.ShapeDtypeStruct((1, t), jnp.int32)
        fn = jax.jit(lambda q, k, s: attn.attention(q, k, k, s, s, impl=impl))
        text = fn.lower(q, k, s).as_text()
        dims = re.findall(r"tensor<((?:[0-9]+x)+)(?:f32|i1|i32|bf16)>", text)
        return max(math.prod(int(d) for d in x.rstrip("x").split("x")) for x in dims)

    assert largest("reference", 4096) == 4 * largest("reference", 2048) >= 2048 * 2048
    assert largest("blocked", 4096) <= 2 * largest("blocked", 2048)
    assert largest("blocked", 4096) < 4096 * 4096 // 8


_SHARDED_WORKER = """
import sys, json
import numpy as np, jax
sys.path.insert(0, sys.argv[1])
from test_attention import make_inputs, numpy_reference, real
from arcx.model import attention as attn
from arcx.model.sharding import make_mesh

q, k, v, seg, pos = make_inputs([[100, 28], [128], [60, 60], [5, 100]], 128, 4, 2, 64, seed=10)
want = numpy_reference(q, k, v, seg, seg, pos, pos)
errs = {}
for impl, kw in [("splash", dict(block_q=128, block_kv=128)), ("flash", dict(block_q=32, block_kv=32))]:
    for model_axis in (1, 2):
        mesh = make_mesh(model_axis)
        fn = jax.jit(lambda q, k, v, s: attn.attention(q, k, v, s, s, impl=impl, mesh=mesh, **kw))
        text = fn.lower(q, k, v, seg).as_text()
        got = np.asarray(fn(q, k, v, seg), np.float64)
        errs[f"{impl}/model={model_axis}"] = [
            float((np.abs(got - want) * real(seg)).max()), "shard_map" in text or "manual" in text
        ]
print(json.dumps(errs))
"""


@pytest.mark.slow
def test_kernels_under_shard_map_on_four_devices() -> None:
    """With a (data, model) mesh of 4 CPU devices the kernels run per shard (shard_map),
    rows over data and heads over model, and still match the float64 reference."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"}
    here = str(Path(__file__).resolve().parent)
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED_WORKER, here],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    errs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(errs) == 4
    for name, (err, manual) in errs.items():
        assert manual, f"{name}: no shard_map in the lowered program"
        assert err < FP32_ATOL, f"{name}: max abs error {err:.2e}"
