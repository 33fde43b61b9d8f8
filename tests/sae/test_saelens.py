"""The export read by SAELens itself: ``sae_lens.training.activations_store.ActivationsStore``
with ``cached_activations_path`` set, iterated as a trainer does (``next_batch``).

Skipped when sae_lens is not importable (it is not a dependency of arcx: it pulls
transformer-lens and wandb). Run it with SAELens on the path, e.g.::

    pip install --no-deps --target /tmp/saelens-pkgs sae-lens "transformer-lens<4" einops \
        jaxtyping better-abc simple-parsing docstring-parser wandb platformdirs
    PYTHONPATH=/tmp/saelens-pkgs .venv/bin/pytest tests/sae/test_saelens.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arcx.sae.export import export_saelens, hook_name
from tests.sae.stores import BuiltStore

pytestmark = pytest.mark.torch

CTX = 16


def test_saelens_activations_store_trains_from_the_export(
    tmp_path: Path, store: BuiltStore
) -> None:
    torch = pytest.importorskip("torch")
    act_store = pytest.importorskip("sae_lens.training.activations_store")
    from datasets import Dataset

    out = tmp_path / "cache"
    report = export_saelens(str(store.root), out, site="mlp_out", layer=3, context_size=CTX)
    hook = hook_name("mlp_out", 3)
    # ActivationsStore reads the first row of a token dataset even when it uses a cache.
    tokens = Dataset.from_dict({"tokens": [[5] * CTX] * 4})
    s = act_store.ActivationsStore(
        model=None,
        dataset=tokens,
        streaming=False,
        hook_name=hook,
        hook_head_index=None,
        context_size=CTX,
        d_in=store.d_model,
        n_batches_in_buffer=4,
        total_training_tokens=report.tokens_written,
        store_batch_size_prompts=2,
        train_batch_size_tokens=32,
        prepend_bos=False,
        normalize_activations="none",
        device=torch.device("cpu"),
        dtype="float32",
        cached_activations_path=str(out),
    )
    stored = {int(r[0]): r for r in store.rows("mlp_out", 3)}
    seen = []
    for _ in range(report.tokens_written // 32):
        batch = s.next_batch()
        assert tuple(batch.shape) == (32, store.d_model)
        for row in batch.numpy():
            np.testing.assert_array_equal(row, stored[int(row[0])])
            seen.append(int(row[0]))
    assert len(set(seen)) > len(seen) // 2  # mostly distinct rows within one pass
