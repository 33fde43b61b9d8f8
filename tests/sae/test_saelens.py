"""The export as SAELens itself reads it: ``sae_lens.training.activations_store.ActivationsStore``
with ``cached_activations_path`` set, iterated as a trainer does (``next_batch``), in a
subprocess with the SAELens overlay of ``make saelens`` (tests/sae/saelens_env.py). The
training run on a real store is tests/runner/test_saelens_training.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arcx.sae.export import export_saelens, hook_name
from tests.sae.saelens_env import run_check
from tests.sae.stores import BuiltStore

pytestmark = [pytest.mark.torch, pytest.mark.slow]

CTX = 16


def test_saelens_activations_store_reads_the_export(tmp_path: Path, store: BuiltStore) -> None:
    out = tmp_path / "cache"
    report = export_saelens(str(store.root), out, site="mlp_out", layer=3, context_size=CTX)
    rows_file = tmp_path / "rows.npy"
    run_check(
        "read",
        "--cache",
        str(out),
        "--hook",
        hook_name("mlp_out", 3),
        "--d-in",
        str(store.d_model),
        "--ctx",
        str(CTX),
        "--tokens",
        str(report.tokens_written),
        "--out",
        str(rows_file),
    )
    rows = np.load(rows_file)
    assert rows.shape == (report.tokens_written // 32 * 32, store.d_model)
    stored = {int(r[0]): r for r in store.rows("mlp_out", 3)}
    for row in rows:  # column 0 of every stored row is its unique id
        np.testing.assert_array_equal(row, stored[int(row[0])])
    ids = [int(r[0]) for r in rows]
    assert len(set(ids)) > len(ids) // 2  # mostly distinct rows within one pass
