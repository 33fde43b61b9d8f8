"""Mixing: batches must draw from many units, close to an ideal uniform shuffle.

Statistic: the concentration of a batch, sum over units of (share of the batch's rows from
that unit)^2. A batch from one unit scores 1. For an ideal uniform shuffle of the whole
store its expectation is about sum_u q_u^2 + (1 - sum_u q_u^2) / B (q_u: unit u's share
of all rows, B: batch size). The store-order loader must fail the same check, so the test
can fail.
"""

from __future__ import annotations

import numpy as np

from arcx.sae.loader import ActivationLoader
from tests.sae.stores import BuiltStore

BATCH = 64


def _concentration(units: np.ndarray) -> float:
    _, counts = np.unique(units, return_counts=True)
    p = counts / counts.sum()
    return float((p**2).sum())


def _stats(loader: ActivationLoader) -> tuple[float, float, float]:
    batches = [b for b in loader.batches() if len(b.units) == BATCH]
    conc = np.array([_concentration(b.units) for b in batches])
    single = float(np.mean([len(np.unique(b.units)) == 1 for b in batches]))
    all_units = np.concatenate([b.units for b in batches])
    _, counts = np.unique(all_units, return_counts=True)
    q2 = float(((counts / counts.sum()) ** 2).sum())
    ideal = q2 + (1 - q2) / BATCH
    return float(conc.mean()), single, ideal


def _loader(store: BuiltStore, **kw: object) -> ActivationLoader:
    return ActivationLoader(
        str(store.root), site="resid_post", layer=3, batch_size=BATCH, seed=11, **kw
    )


def test_shuffled_batches_mix_across_units(big_store: BuiltStore) -> None:
    mean_conc, single, ideal = _stats(_loader(big_store, shuffle_buffer_tokens=2048, open_parts=8))
    assert single == 0.0
    assert mean_conc < 2.5 * ideal, (mean_conc, ideal)
    # consecutive batches share little: not runs of one task
    loader = _loader(big_store, shuffle_buffer_tokens=2048, open_parts=8)
    tops = [np.bincount(b.units).argmax() for b in loader.batches() if len(b.units) == BATCH]
    assert np.mean(np.diff(tops) == 0) < 0.5


def test_store_order_fails_the_mixing_check(big_store: BuiltStore) -> None:
    mean_conc, single, ideal = _stats(_loader(big_store, shuffle=False))
    assert single > 0.5
    assert mean_conc > 2.5 * ideal


def test_one_open_part_with_a_small_buffer_mixes_worse(big_store: BuiltStore) -> None:
    """Shuffling within one file at a time (the SAELens#612 shape) is measurably worse."""
    narrow, _, ideal = _stats(_loader(big_store, shuffle_buffer_tokens=BATCH, open_parts=1))
    wide, _, _ = _stats(_loader(big_store, shuffle_buffer_tokens=2048, open_parts=8))
    assert narrow > 2.5 * ideal
    assert wide < narrow / 2
