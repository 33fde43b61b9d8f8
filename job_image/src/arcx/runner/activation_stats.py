"""Activation statistics during extraction: moments computed on the device, merged on the host.

Each batch's gather program also returns, per data shard and captured tensor, the
moments of the shard's kept rows (:func:`device_moments`, float32, two passes over the
rows already in device memory, so only O(D) numbers per tensor leave the device).
:class:`UnitStats` merges them over the unit's batches (Chan's update, float64) and turns
them into the part's ``stats.<site>.<layer>.<stat>`` tensors (arcx_store.stats).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from arcx_store.stats import TOP_K, Moments

# The names of the device program's outputs, one dict per captured tensor.
DEVICE_FIELDS = ("count", "mean", "m2", "norm_sum", "maxabs", "top_norm", "top_index")


def device_moments(x: Any, count: Any, k: int = TOP_K) -> dict[str, Any]:
    """Moments of the first ``count`` rows of ``x`` [N, D] (jnp; the rest is padding)."""
    import jax
    import jax.numpy as jnp

    n_rows = x.shape[0]
    x = x.astype(jnp.float32)
    valid = jnp.arange(n_rows) < count
    xv = jnp.where(valid[:, None], x, 0.0)
    n = jnp.maximum(count, 1).astype(jnp.float32)
    mean = xv.sum(axis=0) / n
    dev = jnp.where(valid[:, None], x - mean, 0.0)
    norms = jnp.sqrt((xv * xv).sum(axis=1))
    top_norm, top_index = jax.lax.top_k(jnp.where(valid, norms, -1.0), min(k, n_rows))
    return {
        "count": jnp.asarray(count, jnp.int32).reshape(()),
        "mean": mean,
        "m2": (dev * dev).sum(axis=0),
        "norm_sum": norms.sum(),
        "maxabs": jnp.abs(xv).max(axis=0),
        "top_norm": top_norm,
        "top_index": top_index.astype(jnp.int32),
    }


def host_moments(
    arrays: Mapping[str, np.ndarray], seq_counts: Sequence[tuple[int, int]], k: int = TOP_K
) -> Moments:
    """One shard's device moments -> Moments whose top ids are (sequence, kept offset)."""
    count = int(arrays["count"])
    d = int(np.asarray(arrays["mean"]).shape[-1])
    if count == 0:
        return Moments.empty(d, k, 2)
    starts = np.cumsum([0, *[n for _, n in seq_counts]])
    seqs = np.asarray([s for s, _ in seq_counts], np.int64)
    top_norm = np.zeros(k, np.float32)
    top_ids = np.full((k, 2), -1, np.int64)
    j = 0
    for value, index in zip(arrays["top_norm"], arrays["top_index"], strict=True):
        if value < 0 or index >= count:
            continue
        which = int(np.searchsorted(starts, index, side="right")) - 1
        top_norm[j] = value
        top_ids[j] = (seqs[which], index - starts[which])
        j += 1
    return Moments(
        count,
        np.asarray(arrays["mean"], np.float64),
        np.asarray(arrays["m2"], np.float64),
        float(arrays["norm_sum"]) / count,
        np.asarray(arrays["maxabs"], np.float32),
        top_norm,
        top_ids,
    )


class UnitStats:
    """The statistics of one host's part of one unit, merged batch by batch."""

    def __init__(self) -> None:
        self.by_tensor: dict[str, Moments] = {}

    def add(self, name: str, moments: Moments) -> None:
        prev = self.by_tensor.get(name)
        self.by_tensor[name] = moments if prev is None else prev.merge(moments)

    def part_tensors(
        self, names: Sequence[str], d_model: int, seq_order: Sequence[int], lengths: Sequence[int]
    ) -> dict[str, np.ndarray]:
        """The part's stats tensors; sequences lie in the part in ``seq_order`` with
        ``lengths`` kept rows each, which turns (sequence, offset) into a part row."""
        start = dict(zip(seq_order, np.cumsum([0, *lengths])[:-1].tolist(), strict=True))
        out: dict[str, np.ndarray] = {}
        for name in names:
            m = self.by_tensor.get(name, Moments.empty(d_model, TOP_K, 2))
            rows = np.asarray(
                [start[int(s)] + int(o) if s >= 0 else -1 for s, o in m.top_ids], np.int64
            )
            site, layer = name.rsplit(".", 1)
            part = Moments(m.count, m.mean, m.m2, m.norm, m.maxabs, m.top_norm, rows[:, None])
            out.update(part.to_tensors(site, int(layer)))
        return out
