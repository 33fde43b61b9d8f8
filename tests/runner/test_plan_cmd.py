"""`arcx plan`: its predictions against what a real run of the same job wrote, and its
pure arithmetic against hand counts."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from arcx_store.backends import open_storage
from arcx_store.parts import sequence_bytes, token_bytes
from arcx_store.stats import part_stats_bytes

from arcx.planning.estimate import (
    JobShape,
    ModelShape,
    Sample,
    SeqInfo,
    build_plan,
    percentiles,
    relative_error_95,
)
from arcx.runner.progress import read_events

SHAPE = ModelShape(d_model=8, n_layers=4, n_heads=2, n_kv_heads=1, head_dim=4, d_ff=16, vocab=10)


def _plan_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcx.cli", "--log-format", "json", "plan", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.multiprocess
def test_plan_predicts_what_the_run_wrote(run_store) -> None:
    store = run_store(2, 1)  # 2 processes x 1 device: 2 data shards
    res = _plan_cli("--config", str(store.parent / "job.yaml"), "--chips", "2", "--json")
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    inspect = json.loads(
        subprocess.run(
            [sys.executable, "-m", "arcx.cli", "inspect", str(store), "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert not plan["sampled"] and plan["tasks"] == inspect["tasks"]
    assert plan["units"] == inspect["unitsTotal"]
    assert plan["sequences"] == inspect["sequences"]
    assert plan["sequences_skipped"] == inspect["sequencesSkipped"] > 0
    assert plan["tokens_kept"] == inspect["tokens"]
    # parts add a safetensors header and offsets per part to the activation bytes
    assert plan["bytes_total"] <= inspect["bytesInParts"] <= plan["bytes_total"] * 1.05
    events = [e for e in read_events(open_storage(str(store))) if e["event"] == "unit-committed"]
    assert sum(e["tokensPadded"] for e in events) == plan["padded_slots"]
    assert sum(e["tokensReal"] for e in events) == plan["tokens"]


@pytest.mark.slow
def test_a_sample_states_its_error_and_scales_to_the_whole_dataset(
    tmp_path: Path, tiny_model: Path, arc_tasks: Path
) -> None:
    from tests.runner import harness

    cfg = harness.write_config(
        tmp_path / "job.yaml", model=tiny_model, tasks=arc_tasks, out=str(tmp_path / "out")
    )
    full = json.loads(_plan_cli("--config", str(cfg), "--json").stdout)
    res = _plan_cli("--config", str(cfg), "--json", "--sample", "4")
    part = json.loads(res.stdout)
    assert part["sampled"] and part["tasks_sampled"] == 4 and part["tasks"] == full["tasks"]
    assert 0 < part["relative_error_95"] < 1
    # the interval is an estimate, so only sanity: the truth is within three of them
    assert abs(part["tokens"] - full["tokens"]) <= 3 * part["relative_error_95"] * part["tokens"]
    text = _plan_cli("--config", str(cfg), "--sample", "4").stdout
    assert "sampled 4 of 8 tasks at random" in text and "95% interval" in text
    assert "tpu-v5e" in text and "h100" in text


def test_a_bad_config_is_one_line_and_exit_78(tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text("model: {source: /nowhere}\ndataset: {source: /nowhere}\n")
    res = _plan_cli("--config", str(bad))
    assert res.returncode == 78
    assert "Traceback" not in res.stderr and "extraction" in res.stderr


def test_flops_per_token_and_attention_match_a_hand_count() -> None:
    # q 8x8, k and v 8x4 each, o 8x8, MLP 3 x 8x16: 576 multiply-adds per layer
    assert SHAPE.linear_flops_per_token(layers=4) == 2 * 4 * 576
    # causal: query i sees i+1 keys; QK^T and AV: 2 x 2 x head_dim per key and head
    length = 5
    by_hand = sum(2 * 2 * SHAPE.head_dim * SHAPE.n_heads * (i + 1) for i in range(length))
    assert SHAPE.attention_flops(length, layers=1) == by_hand


class _Batch:
    def __init__(self, length: int, rows: int) -> None:
        self.length, self.num_rows = length, rows


def test_plan_scales_a_sample_and_prices_padding_and_early_stop() -> None:
    seqs = [SeqInfo(10, 8, 2, 10), SeqInfo(6, 5, 1, 6)]
    sample = Sample(
        tasks_total=4, tasks_read=2, groups=[seqs], skipped_lengths=[99], per_task_tokens=[10, 6]
    )
    job = JobShape(
        sites=2,
        layers=[1],
        dtype="bfloat16",
        unit_size=2,
        max_seq_len=16,
        scores=False,
        max_new_tokens=0,
        packed=False,
    )
    plan = build_plan(sample, SHAPE, job, lambda lengths: [_Batch(16, 2)], mfu=0.5, chips=2)
    assert plan.layers_run == 2  # layer 1 is the deepest kept: the forward stops there
    assert (plan.tokens, plan.tokens_kept, plan.padded_slots) == (32, 32, 64)
    assert plan.sequences == 4 and plan.sequences_skipped == 2 and plan.units == 2
    assert plan.padding_fraction == pytest.approx(0.5)
    assert plan.bytes_per_site_layer == 32 * 8 * 2
    # 2 site.layers of activations, then per kept token its id and annotations, per
    # sequence its offset and augmentation, per unit and site.layer the statistics
    assert plan.bytes_total == (
        2 * 512 + 32 * token_bytes() + 4 * sequence_bytes() + 2 * 2 * part_stats_bytes(8)
    )
    lin = SHAPE.linear_flops_per_token(2)
    model = 2 * (16 * lin + SHAPE.attention_flops(10, 2) + SHAPE.attention_flops(6, 2))
    assert plan.flops_model == pytest.approx(model)
    assert plan.flops_executed == pytest.approx(model + 2 * 16 * lin)
    v5e = next(a for a in plan.accelerators if a.name == "tpu-v5e")
    assert v5e.chip_hours == pytest.approx(plan.flops_executed / (197e12 * 0.5) / 3600)
    assert v5e.wall_hours == pytest.approx(v5e.chip_hours / 2)


def test_percentiles_and_sampling_error() -> None:
    assert percentiles(list(range(1, 101))) == {"p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert relative_error_95([5, 7], population=2) == 0.0  # a census is exact
    xs = [10, 20, 30, 40]
    mean, sd = 25.0, math.sqrt(sum((x - 25) ** 2 for x in xs) / 3)
    want = 1.96 * sd / math.sqrt(4) * math.sqrt(1 - 4 / 100) / mean
    assert relative_error_95(xs, population=100) == pytest.approx(want)
