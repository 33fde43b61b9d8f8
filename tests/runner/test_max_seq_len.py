"""A job whose every sequence is longer than maxSeqLen fails with exit 78 (it used to
"succeed" with 0 tokens), and one that keeps a single sequence still succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcx import exitcodes
from arcx.runner.run import RunStats, check_some_sequence_fits
from tests.runner import harness


def _skip(length: int) -> dict:
    return {"taskId": "t", "testIndex": 0, "length": length, "reason": f"{length} tokens > 16"}


def test_every_sequence_skipped_is_a_configuration_error() -> None:
    from arcx.config import ConfigError

    with pytest.raises(ConfigError, match="shortest being 40 tokens > maxSeqLen 16"):
        check_some_sequence_fits(RunStats(skipped=[_skip(90), _skip(40)]), 16)
    check_some_sequence_fits(RunStats(sequences=1, skipped=[_skip(90)]), 16)
    check_some_sequence_fits(RunStats(), 16)  # a resumed job with nothing left to do


@pytest.mark.slow
def test_arcx_run_exits_78_when_max_seq_len_keeps_nothing(
    tmp_path: Path, tiny_model: Path, arc_tasks: Path, jax_cache: Path
) -> None:
    cfg = harness.write_config(
        tmp_path / "job.yaml",
        model=tiny_model,
        tasks=arc_tasks,
        out=str(tmp_path / "store"),
        batching={"tokensPerBatch": 64, "maxSeqLen": 16},
        dataset={"maxTasks": 2},
    )
    codes = harness.run(cfg, 1, 1, harness.base_env(jax_cache), tmp_path / "logs")
    log = harness.logs(tmp_path / "logs")
    assert codes == [exitcodes.CONFIG_ERROR], log[-3000:]
    assert "batching.maxSeqLen: all" in log and "Traceback" not in log
