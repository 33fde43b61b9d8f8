"""Packing: rows of several sequences, planned from lengths alone; their device inputs; and
the engine on packed rows against the same sequences one per row."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcx.runner import batching, packing
from arcx.runner.batching import Batch, Segment
from arcx.runner.device_inputs import build_inputs


def _plan(lengths, *, row_len=1024, max_len=2048, budget=4096):
    return packing.pack_shard_batches(
        lengths,
        row_len=row_len,
        row_lengths=packing.packed_row_lengths(row_len, max_len),
        tokens_per_batch=budget,
    )


@given(
    st.lists(st.integers(1, 2048), min_size=0, max_size=80),
    st.sampled_from([256, 1024, 2048]),
    st.sampled_from([2048, 4096, 16384]),
)
def test_packed_rows_hold_every_sequence_once_contiguously_within_budget(lengths, row_len, budget):
    row_lengths = packing.packed_row_lengths(row_len, 2048)
    batches = _plan(lengths, row_len=row_len, budget=budget)
    seen = sorted(seg.seq for b in batches for row in b.rows for seg in row)
    assert seen == list(range(len(lengths)))
    for b in batches:
        assert b.length in row_lengths
        assert b.num_rows * b.length <= max(budget, b.length)
        for row in (r for r in b.rows if r):  # () is an empty filler row
            assert all(seg.length == lengths[seg.seq] for seg in row)
            # segments are back to back from slot 0, inside the row
            assert [seg.start for seg in row] == [0, *(seg.stop for seg in row[:-1])]
            assert row[-1].stop <= b.length
            # a row longer than row_len holds one long sequence first
            assert row[-1].stop <= row_len or row[0].length > row_len


@given(st.lists(st.integers(1, 2048), min_size=1, max_size=60))
@settings(max_examples=50)
def test_each_shard_sees_the_same_packed_batches_whatever_the_shard_count(lengths):
    one = _plan(lengths)
    key = lambda rows: min(seg.seq for row in rows for seg in row)  # noqa: E731
    expected = sorted(((b.length, b.rows) for b in one), key=lambda x: key(x[1]))
    for n in (2, 4, 8):
        got = []
        for b in batching.stack_shards(_plan(lengths), n):
            assert b.num_rows % n == 0
            for s in range(n):
                rows = b.shard_rows(s)
                if any(rows):
                    got.append((b.length, rows))
        assert sorted(got, key=lambda x: key(x[1])) == expected


def test_first_fit_decreasing_fills_rows_longest_first():
    rows = packing.pack_rows(
        [300, 700, 200, 900, 100], 1024, packing.packed_row_lengths(1024, 1024)
    )
    assert rows == [
        (Segment(3, 0, 900), Segment(4, 900, 100)),
        (Segment(1, 0, 700), Segment(0, 700, 300)),
        (Segment(2, 0, 200),),
    ]


def test_packing_pads_little_on_an_arc_like_length_distribution():
    """Lengths drawn like ARC-AGI-1 prompts (median ~1300, long tail to 8192), in units of
    20 sequences, as the runner plans them; the bucketed planner is the baseline."""
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(1300), 0.6, size=400), 200, 8192).astype(int)
    real = padded = bucketed = 0
    for u in range(0, len(lengths), 20):
        unit = [int(x) for x in lengths[u : u + 20]]
        packed = _plan(unit, row_len=4096, max_len=8192, budget=8192)
        plain = batching.plan_shard_batches(
            unit, buckets=batching.make_buckets(8192), tokens_per_batch=8192
        )
        real += sum(unit)
        padded += sum(b.num_rows * b.length for b in packed)
        bucketed += sum(b.num_rows * b.length for b in plain)
    assert 1 - real / padded <= 0.05
    assert 1 - real / bucketed > 0.15  # what packing saves, so the check above means something


def test_a_small_unit_is_balanced_so_no_shard_idles():
    """A unit that first-fit-decreasing packs into rows of four different lengths (so with 2
    shards each shape's one batch leaves the other shard idle) is planned as 2^k rows of one
    length instead: on 1 or 2 shards no shard runs an empty batch, at about the same slots."""
    lengths = [1079, 3121, 607, 1015, 4391, 439, 807, 1419]  # arcx demo's first unit
    row_lengths = packing.packed_row_lengths(8192, 8192)
    ffd = packing.pack_rows(lengths, 8192, row_lengths)
    assert len({packing.row_length_for(r[-1].stop, row_lengths) for r in ffd}) == len(ffd) == 2
    batches = _plan(lengths, row_len=8192, max_len=8192, budget=8192)
    assert len({b.length for b in batches}) == 1
    rows = [r for b in batches for r in b.rows]
    assert len(rows) & (len(rows) - 1) == 0 and all(rows)  # a power of two, none empty
    assert sorted(seg.seq for r in rows for seg in r) == list(range(len(lengths)))
    assert len(batches) == 2
    for n in (1, 2):
        stacked = batching.stack_shards(batches, n)
        padded = sum(b.num_rows * b.length for b in stacked)
        assert 1 - sum(lengths) / padded <= 0.10, n
        assert all(all(b.shard_rows(s)) for b in stacked for s in range(n))
    # unbalanced, the same unit on 2 shards pays an idle shard per shape
    ffd_batches = packing._pack_ffd_batches(lengths, 8192, row_lengths, 8192)
    idle = sum(b.num_rows * b.length for b in batching.stack_shards(ffd_batches, 2))
    assert 1 - sum(lengths) / idle > 0.4


def test_row_lengths_are_few_and_cover_the_range():
    rl = packing.packed_row_lengths(4096, 8192)
    assert rl[-1] == 8192 and 4096 in rl and len(rl) <= 40
    assert list(rl) == sorted(set(rl)) and all(x % batching.ALIGN == 0 for x in rl)
    assert all(b - a == 256 for a, b in itertools.pairwise(rl) if a >= 256)


class _Seq:
    def __init__(self, ids, prompt_len, answer_span=None):
        self.input_ids = np.asarray(ids, np.int32)
        self.prompt_len = prompt_len
        self.answer_span = answer_span


def test_device_inputs_of_a_packed_row():
    seqs = [_Seq([5, 6, 7, 8], 2, (2, 4)), _Seq([9, 10, 11], 3), _Seq([1, 2, 3, 4, 5], 3, (3, 5))]
    batch = Batch(16, ((Segment(2, 0, 5), Segment(0, 5, 4)), (Segment(1, 0, 3),)))
    keep = [np.array([2, 3]), np.array([0]), np.arange(5)]
    inp = build_inputs(batch, seqs, keep, pad_token_id=0, scoring=True, generation=False)
    assert inp.ids[0, :9].tolist() == [1, 2, 3, 4, 5, 5, 6, 7, 8]
    assert inp.segment_ids[0].tolist() == [1] * 5 + [2] * 4 + [0] * 7
    assert inp.positions[0, :9].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert inp.segment_ids[1].tolist() == [1] * 3 + [0] * 13
    # the logits at slot p predict token p + 1: answers at (3, 5) of seq 2 and (2, 4) of seq 0
    assert inp.logit_positions is not None
    assert inp.logit_positions[0, :4].tolist() == [2, 3, 5 + 1, 5 + 2]
    assert {(a.seq, a.row, a.offset, a.count) for a in inp.answers} == {(2, 0, 0, 2), (0, 0, 2, 2)}
    assert inp.gather.cols[0, :8].tolist() == [0, 1, 2, 3, 4, 7, 8, 0]
    assert (inp.real_tokens, inp.padded_tokens) == (12, 32)
    with pytest.raises(ValueError, match="unpacked"):
        build_inputs(batch, seqs, keep, pad_token_id=0, scoring=False, generation=True)
    plain = build_inputs(batch, seqs, keep, pad_token_id=0, scoring=False, generation=False)
    assert plain.logit_positions is None and plain.answers == ()


def test_generation_inputs_hold_the_prompt_only():
    seqs = [_Seq([5, 6, 7, 8], 2, (2, 4))]
    batch = Batch(8, ((Segment(0, 0, 4),), ()))
    inp = build_inputs(batch, seqs, [np.arange(4)], pad_token_id=0, scoring=True, generation=True)
    assert inp.gen_ids is not None and inp.gen_mask is not None
    assert inp.gen_ids[0].tolist() == [5, 6, 0, 0, 0, 0, 0, 0]
    assert inp.gen_mask.tolist() == [[1, 1, 0, 0, 0, 0, 0, 0], [0] * 8]


def test_engine_on_packed_rows_matches_one_sequence_per_row(tiny_model):
    """The whole device path (inputs, forward, gather, argmax) on packed rows gives every
    sequence's kept activations and teacher-forced guesses as when it runs alone, fp32."""
    from arcx.model import load_model, make_mesh
    from arcx.runner.engine import Engine

    mesh = make_mesh(1)
    loaded = load_model(str(tiny_model), mesh=mesh, dtype="float32")
    eng = Engine(
        loaded,
        mesh,
        sites=["resid_post", "attn_out"],
        layers=[0, 1],
        out_dtype="float32",
        max_new_tokens=0,
        scoring=True,
        attention="blocked",
    )
    rng = np.random.default_rng(1)
    lens = [700, 300, 180, 120, 64]
    vocab = loaded.config.vocab_size
    seqs = [_Seq(rng.integers(3, vocab, n), n - 20, (n - 20, n)) for n in lens]
    keep = [np.sort(rng.choice(n, 50, replace=False)).astype(np.int32) for n in lens]
    packed = _plan(lens, row_len=1024, max_len=1024, budget=1024)
    assert any(b.packed for b in packed)
    alone = batching.plan_shard_batches(
        lens, buckets=batching.make_buckets(1024), tokens_per_batch=1024
    )

    def run(batches):
        acts, guesses = {}, {}
        for b in batches:
            inp = build_inputs(b, seqs, keep, pad_token_id=0, scoring=True, generation=False)
            got = eng.fetch(eng.dispatch(inp))
            pos = 0
            for seq, n in inp.gather.seq_counts[0]:
                acts[seq] = {k: v[pos : pos + n] for k, v in got.shards[0].items()}
                pos += n
            for a in inp.answers:
                guesses[a.seq] = got.argmax[a.row, a.offset : a.offset + a.count]
        return acts, guesses

    acts_p, guess_p = run(packed)
    acts_a, guess_a = run(alone)
    for i in range(len(lens)):
        for k in eng.keys:
            np.testing.assert_allclose(acts_p[i][k], acts_a[i][k], rtol=2e-5, atol=2e-5)
        np.testing.assert_array_equal(guess_p[i], guess_a[i])


@pytest.mark.multiprocess
def test_a_job_that_does_not_score_writes_no_predictions_and_the_same_activations(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache
):
    """``scoring: false``: no logits, the forward stops after the deepest captured layer
    (layer 3 of the tiny model's 4); the stored activations match the scoring run's within
    bf16 rounding (the programs differ, so bit equality is not promised)."""
    import ml_dtypes

    from tests.runner import harness

    cfg = harness.write_config(
        tmp_path / "job.yaml",
        model=tiny_model,
        tasks=arc_tasks,
        out=str(tmp_path / "store"),
        extraction={"layers": [1, 2], "scoring": False},
    )
    assert harness.run(cfg, 1, 1, harness.base_env(jax_cache), tmp_path / "logs") == [0]
    assert not (tmp_path / "store" / "predictions").exists()
    scored = harness.sequences(run_store(1, 1))  # layers [1, 3], scoring on
    mine = harness.sequences(tmp_path / "store")
    assert mine.keys() == scored.keys()
    for key, tensors in mine.items():
        assert tensors["token_ids"] == scored[key]["token_ids"]
        for name in ("resid_post.1", "mlp_out.1"):
            a = np.frombuffer(tensors[name], ml_dtypes.bfloat16).astype(np.float32)
            b = np.frombuffer(scored[key][name], ml_dtypes.bfloat16).astype(np.float32)
            np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2)
