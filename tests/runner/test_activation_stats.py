"""Activation statistics: the device moments and the host merge against a direct numpy
computation over the same rows (float64), for any split of the rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from arcx_store import layout
from arcx_store.stats import TOP_K, Moments
from hypothesis import given, settings
from hypothesis import strategies as st

from arcx.runner.activation_stats import UnitStats, device_moments, host_moments


def _rows(seed: int, n: int, d: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, (n, d))
    x[rng.integers(0, n) if n else 0 :][:1] *= 40  # one massive activation
    return x


def assert_same(got: Moments, want: Moments) -> None:
    assert got.count == want.count
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.variance, want.variance, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got.norm, want.norm, rtol=1e-5)
    np.testing.assert_allclose(got.maxabs, want.maxabs, rtol=1e-5)
    np.testing.assert_allclose(got.top_norm, want.top_norm, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), cuts=st.lists(st.integers(0, 40), max_size=4), seed=st.integers(0, 99))
def test_merging_any_split_equals_the_direct_statistics(n, cuts, seed) -> None:
    x = _rows(seed, n)
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    merged = Moments.empty(x.shape[1])
    for a, b in itertools.pairwise(bounds):
        m = Moments.of(x[a:b])
        rows = np.where(m.top_ids >= 0, m.top_ids + a, -1)  # part rows -> rows of x
        merged = merged.merge(Moments(m.count, m.mean, m.m2, m.norm, m.maxabs, m.top_norm, rows))
    want = Moments.of(x)
    assert_same(merged, want)
    np.testing.assert_array_equal(merged.top_ids, want.top_ids)  # the rows, largest first


def test_device_moments_ignore_padding_and_name_sequence_and_offset() -> None:
    import jax.numpy as jnp

    x = _rows(1, 20)
    padded = np.concatenate([x, np.full((12, x.shape[1]), 1e6)])  # padding must not count
    out = {k: np.asarray(v) for k, v in device_moments(jnp.asarray(padded), jnp.int32(20)).items()}
    seq_counts = [(4, 5), (7, 15)]  # rows 0..4 are sequence 4, rows 5..19 sequence 7
    got = host_moments(out, seq_counts)
    want = Moments.of(x)
    assert_same(got, want)
    rows = want.top_ids[:, 0]
    expect = [(4, r) if r < 5 else (7, r - 5) for r in rows]
    assert [tuple(t) for t in got.top_ids] == expect


def test_an_empty_shard_is_an_empty_moment() -> None:
    import jax.numpy as jnp

    out = device_moments(jnp.ones((8, 3)), jnp.int32(0))
    m = host_moments({k: np.asarray(v) for k, v in out.items()}, [])
    assert m.count == 0 and m.merge(Moments.of(_rows(2, 3, 3))).count == 3


def test_unit_stats_become_part_tensors_with_part_rows() -> None:
    x = _rows(3, 9)
    acc = UnitStats()
    # Two batches: sequence 2 (4 rows) then sequence 0 (5 rows); the part holds 0 then 2.
    for seq, a, b in [(2, 0, 4), (0, 4, 9)]:
        m = Moments.of(x[a:b])
        ids = np.where(m.top_ids >= 0, m.top_ids, -1)
        pair = np.stack([np.where(ids[:, 0] >= 0, seq, -1), ids[:, 0]], axis=1)
        acc.add("resid_post.1", Moments(m.count, m.mean, m.m2, m.norm, m.maxabs, m.top_norm, pair))
    tensors = acc.part_tensors(["resid_post.1", "mlp_out.1"], 6, [0, 2], [5, 4])
    part_rows = np.concatenate([x[4:9], x[0:4]])
    back = Moments.from_tensors(tensors, "resid_post", 1)
    assert_same(back, Moments.of(part_rows))
    np.testing.assert_array_equal(back.top_ids, Moments.of(part_rows).top_ids)
    empty = Moments.from_tensors(tensors, "mlp_out", 1)
    assert empty.count == 0 and (empty.top_ids == -1).all()
    assert tensors[layout.stats_name("resid_post", 1, "toprow")].shape == (TOP_K,)


def test_a_part_stores_only_row_ids() -> None:
    with pytest.raises(ValueError, match="one id"):
        Moments.of(_rows(0, 3)).relabel(5).to_tensors("resid_post", 0)
