"""SAELens trains on what arcx exported from a real run: its own ``SAETrainer.fit`` on a
``StandardTrainingSAE``, a few hundred steps, and the reconstruction loss falls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arcx.sae.export import export_saelens, hook_name
from tests.sae.saelens_env import run_check

pytestmark = [pytest.mark.torch, pytest.mark.slow, pytest.mark.multiprocess]

CTX = 64
STEPS = 300


def test_saelens_trains_on_the_export_and_its_loss_falls(run_store, tmp_path: Path) -> None:
    store = run_store(2, 1)
    out = tmp_path / "cache"
    report = export_saelens(str(store), out, site="resid_post", layer=3, context_size=CTX)
    assert report.rows > 0 and report.excluded_token_ids  # special tokens dropped
    res = run_check(
        "train",
        "--cache",
        str(out),
        "--hook",
        hook_name("resid_post", 3),
        "--d-in",
        str(report.d_in),
        "--ctx",
        str(CTX),
        "--tokens",
        str(report.tokens_written),
        "--steps",
        str(STEPS),
        "--batch",
        "64",
    )
    result = json.loads(res.stdout.strip().splitlines()[-1])
    mse = result["mse"]
    assert result["steps"] == STEPS == len(mse)
    first, last = sum(mse[:20]) / 20, sum(mse[-20:]) / 20
    print(
        f"SAELens StandardTrainingSAE on {report.tokens_written} tokens: MSE {first:.4f} -> {last:.4f}"
    )
    assert last < 0.5 * first, (first, last)
