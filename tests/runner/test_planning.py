"""Pure planning: units, slices, buckets, batches, gathers, the pod environment contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcx.config import ConfigError, parse_config
from arcx.runner import batching
from arcx.runner.distributed import read_cluster_env
from arcx.runner.plan import UnitPlan, plan_units, units_for_slice


def test_units_cover_every_task_once_in_order():
    plan = plan_units(10, 4)
    assert [(u.index, u.start, u.stop) for u in plan.units] == [(0, 0, 4), (1, 4, 8), (2, 8, 10)]
    assert UnitPlan.from_json(plan.to_json()) == plan
    assert plan_units(0, 4).units == ()


@given(st.integers(0, 500), st.integers(1, 40), st.integers(1, 6))
def test_slices_partition_the_units(num_tasks, unit_size, slices):
    plan = plan_units(num_tasks, unit_size)
    seen = [u.index for s in range(slices) for u in units_for_slice(plan, s, slices)]
    assert sorted(seen) == list(range(len(plan.units)))
    for s in range(slices):
        assert all(u.index % slices == s for u in units_for_slice(plan, s, slices))
    assert sum(u.num_tasks for u in plan.units) == num_tasks


def test_slice_index_out_of_range_is_refused():
    with pytest.raises(ValueError, match="outside"):
        units_for_slice(plan_units(4, 1), 2, 2)


def test_buckets_are_few_aligned_and_end_at_max():
    b = batching.make_buckets(8192)
    assert b[-1] == 8192 and len(b) <= 16
    assert all(x % 64 == 0 for x in b) and list(b) == sorted(set(b))
    assert batching.make_buckets(100) == (64, 100)
    assert batching.bucket_for(65, b) == 128
    with pytest.raises(ValueError):
        batching.bucket_for(9000, b)


def _seqs(rows) -> list[int]:
    return [seg.seq for row in rows for seg in row]


@given(
    st.lists(st.integers(1, 2048), min_size=0, max_size=60),
    st.sampled_from([2048, 4096, 16384]),
    st.sampled_from([1, 2, 4, 8]),
)
def test_batches_hold_every_sequence_once_within_budget(lengths, budget, n_shards):
    buckets = batching.make_buckets(2048)
    batches = batching.plan_batches(
        lengths, buckets=buckets, tokens_per_batch=budget, n_shards=n_shards
    )
    assert sorted(_seqs(r for b in batches for r in b.rows)) == list(range(len(lengths)))
    for b in batches:
        assert b.num_rows % n_shards == 0
        assert (b.num_rows // n_shards) * b.length <= max(budget, b.length)
        assert all(len(row) <= 1 for row in b.rows)  # one sequence per row: unpacked
        assert all(lengths[s] <= b.length for s in _seqs(b.rows))
        assert b.length in buckets
        # No sequence is padded past its own bucket.
        assert all(batching.bucket_for(lengths[s], buckets) == b.length for s in _seqs(b.rows))


@given(st.lists(st.integers(1, 2048), min_size=1, max_size=40))
def test_each_shard_sees_the_same_batches_whatever_the_shard_count(lengths):
    """The property that makes activations independent of the topology."""
    buckets = batching.make_buckets(2048)
    one = batching.plan_shard_batches(lengths, buckets=buckets, tokens_per_batch=4096)

    def shard_batches(n: int) -> list[tuple[int, tuple]]:
        out = []
        for b in batching.plan_batches(lengths, buckets=buckets, tokens_per_batch=4096, n_shards=n):
            for s in range(n):
                rows = b.shard_rows(s)
                if _seqs(rows):
                    out.append((b.length, rows))
        return sorted(out, key=lambda x: min(_seqs(x[1])))

    expected = sorted(((b.length, b.rows) for b in one), key=lambda x: min(_seqs(x[1])))
    for n in (2, 4, 8):
        assert shard_batches(n) == expected


def test_gather_keeps_exactly_the_requested_positions_padded_to_a_common_count():
    seg = batching.Segment
    rows = ((seg(0, 0, 5),), (seg(1, 0, 4),), (), (seg(2, 0, 40),))
    batch = batching.Batch(128, rows, n_shards=2)
    keep = [np.arange(5), np.array([3]), np.arange(10, 40)]
    g = batching.plan_gather(batch, keep)
    assert g.counts == (6, 30)
    assert g.rows.shape == g.cols.shape == (2, batching.round_count(30))
    assert list(g.rows[0, :6]) == [0] * 5 + [1] and list(g.cols[0, :6]) == [0, 1, 2, 3, 4, 3]
    assert list(g.rows[1, :30]) == [1] * 30 and list(g.cols[1, :30]) == list(range(10, 40))
    assert g.seq_counts == (((0, 5), (1, 1)), ((2, 30),))


def test_gather_shifts_a_packed_segment_by_its_start():
    seg = batching.Segment
    batch = batching.Batch(64, ((seg(0, 0, 10), seg(1, 10, 20)),))
    g = batching.plan_gather(batch, [np.array([0, 9]), np.array([0, 5, 19])])
    assert list(g.rows[0, :5]) == [0] * 5
    assert list(g.cols[0, :5]) == [0, 9, 10, 15, 29]
    assert g.seq_counts == (((0, 2), (1, 3)),)


def test_round_count_is_bounded_and_never_below_n():
    values = {batching.round_count(n) for n in range(1, 4097)}
    assert len(values) <= 4 * 13 + 1
    assert all(batching.round_count(n) >= n for n in range(1, 5000))


def test_positions_rules():
    assert list(batching.kept_positions("all", 6, 4, (4, 6))) == [0, 1, 2, 3, 4, 5]
    assert list(batching.kept_positions("prompt", 6, 4, (4, 6))) == [0, 1, 2, 3]
    assert list(batching.kept_positions("answer", 6, 4, (4, 6))) == [4, 5]
    assert list(batching.kept_positions("last", 6, 4, (4, 6))) == [3]
    with pytest.raises(ValueError, match="teacher forcing"):
        batching.kept_positions("answer", 4, 4, None)


def test_answer_width_takes_few_values():
    assert batching.answer_width(0, 512) == 1
    assert batching.answer_width(100, 512) == 128
    assert batching.answer_width(200, 512) == 256
    assert batching.answer_width(300, 512) == 512


def test_pod_environment_contract():
    assert read_cluster_env({}).num_processes == 1
    env = read_cluster_env(
        {"JAX_COORDINATOR_ADDRESS": "h-0.svc:1234", "JAX_NUM_PROCESSES": "4", "JOB_COMPLETION_INDEX": "3",
         "ARCX_SLICE_INDEX": "1"},
        slices=2,
    )  # fmt: skip
    assert (env.coordinator, env.num_processes, env.process_id, env.slice_index) == (
        "h-0.svc:1234",
        4,
        3,
        1,
    )
    # JAX_PROCESS_ID wins over the Job's completion index
    env = read_cluster_env(
        {
            "JAX_COORDINATOR_ADDRESS": "h:1",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": "0",
            "JOB_COMPLETION_INDEX": "1",
        }
    )
    assert env.process_id == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}, "needs JAX_COORDINATOR_ADDRESS"),
        ({"JAX_COORDINATOR_ADDRESS": "nohostport", "JAX_NUM_PROCESSES": "2"}, "not host:port"),
        (
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
            "outside 0..1",
        ),
        ({"JAX_NUM_PROCESSES": "two"}, "not an integer"),
        ({"ARCX_SLICE_INDEX": "1"}, "parallelism.slices=1"),
    ],
)
def test_bad_pod_environment_is_a_config_error(env, message):
    with pytest.raises(ConfigError, match=message):
        read_cluster_env(env)


def _config(**extraction):
    from arcx.config import parse_config

    return parse_config(
        {
            "model": {"source": "m"},
            "dataset": {"source": "d"},
            "extraction": {"layers": [0], **extraction},
            "output": {"uri": "o"},
        }
    )


def test_scoring_follows_teacher_forcing_unless_set_and_needs_an_answer():
    assert _config().extraction.scoring is True
    assert _config(teacherForcing=False).extraction.scoring is False
    assert _config(scoring=False).extraction.scoring is False
    # resolved before the hash: unset and the same explicit value are one job
    assert _config().output_hash() == _config(scoring=True).output_hash()
    with pytest.raises(ConfigError, match="scoring: true needs teacherForcing"):
        _config(scoring=True, teacherForcing=False)


def test_moving_the_compilation_cache_keeps_the_job_resumable():
    def job(cache: str) -> str:
        return parse_config(
            {
                "model": {"source": "m"},
                "dataset": {"source": "d"},
                "extraction": {"layers": [0]},
                "output": {"uri": "o"},
                "engine": {"compilationCache": cache},
            }
        ).output_hash()

    assert job("") == job("/cache/a") == job("gs://b/xla")
    assert (
        job("")
        != parse_config(
            {
                "model": {"source": "m"},
                "dataset": {"source": "d"},
                "extraction": {"layers": [1]},
                "output": {"uri": "o"},
            }
        ).output_hash()
    )
