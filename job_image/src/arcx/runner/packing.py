"""Packing: several sequences per row, each its own segment, planned from lengths alone.

Pure and deterministic. One data shard's sequences (a unit's, in the runner) are packed
first-fit-decreasing into rows of ``row_len`` slots (``engine.packedRowLength``): longest
first (ties by index), each into the first row it fits, a new row when none has room. A row's padded
length is the smallest of a few fixed lengths (``row_lengths``) that holds what it
carries, so the number of compiled shapes stays bounded. Rows of one length are cut into
batches of ``tokensPerBatch // length`` rows, like the bucketed planner, and stacked over
the data shards by :func:`arcx.runner.batching.stack_shards`; so the rows, and the bytes
written, do not depend on the topology. A unit is planned balanced instead (2^k rows of one
length, :func:`pack_balanced`) where that costs little, so a small unit leaves no shard of a
power-of-two mesh idle.

A segment's slots are contiguous; inside a row segments are numbered 1..n in row order
(0 = padding, see :mod:`arcx.runner.device_inputs`) and each one's positions restart at 0,
so attention (causal within a segment, never across one) sees every sequence as if it ran
alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from arcx.config import JobConfig
from arcx.runner.batching import (
    ALIGN,
    Batch,
    Segment,
    make_buckets,
    max_rows,
    plan_shard_batches,
    stack_shards,
)


def packed_row_lengths(row_len: int, max_seq_len: int, *, steps: int = 16) -> tuple[int, ...]:
    """Padded row lengths: the short buckets, then steps of ``row_len / steps`` up to
    ``max_seq_len``.

    Most packed rows are nearly full, so lengths are cut finely (at a row length of 4096,
    every 256) to keep a row's rounding small; below the first step the geometric buckets
    serve the few short rows. Rows longer than ``row_len`` hold one long sequence each.
    """
    top = max(row_len, max_seq_len)
    step = max(ALIGN, -(-row_len // steps // ALIGN) * ALIGN)
    fine = set(range(step, top, step)) | {row_len, top}
    coarse = {b for b in make_buckets(top) if b < step}
    return tuple(sorted(fine | coarse))


def pack_rows(
    lengths: Sequence[int], row_len: int, row_lengths: Sequence[int]
) -> list[tuple[Segment, ...]]:
    """First-fit-decreasing: the sequences' segments per row, rows in the order opened.

    A row holds up to ``row_len`` slots; a sequence longer than that opens a row of its
    own padded length, which later (shorter) sequences may still fill.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[Segment]] = []
    used: list[int] = []
    capacity: list[int] = []
    for i in order:
        n = int(lengths[i])
        for r, u in enumerate(used):
            if u + n <= capacity[r]:
                rows[r].append(Segment(i, u, n))
                used[r] = u + n
                break
        else:
            rows.append([Segment(i, 0, n)])
            used.append(n)
            capacity.append(row_len if n <= row_len else row_length_for(n, row_lengths))
    return [tuple(r) for r in rows]


def row_length_for(used: int, row_lengths: Sequence[int]) -> int:
    for length in row_lengths:
        if used <= length:
            return length
    raise ValueError(f"a row of {used} tokens exceeds the longest row length {row_lengths[-1]}")


# How many more slots than first-fit-decreasing a balanced plan may take and still be chosen.
BALANCED_SLACK = 0.05


def pack_balanced(
    lengths: Sequence[int], *, row_len: int, row_lengths: Sequence[int], tokens_per_batch: int
) -> list[Batch] | None:
    """A unit in 2^k rows of one padded length, or None where no such plan fits ``row_len``.

    Sequences go longest first (ties by index) into the least filled of n rows; n is the power
    of two, at most one per sequence, whose rows take the fewest slots. Batches hold a power of
    two rows (at most ``tokens_per_batch // length``), so a unit has 2^j batches of one shape
    and any power-of-two number of data shards up to 2^j runs it with no shard idle, while
    the plan itself never looks at the shard count.
    """
    if not lengths or max(lengths) > row_len:
        return None
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    best: tuple[int, int, list[list[int]]] | None = None
    n = 1
    while n <= len(lengths):
        bins: list[list[int]] = [[] for _ in range(n)]
        used = [0] * n
        for i in order:
            r = min(range(n), key=lambda j: (used[j], j))
            bins[r].append(i)
            used[r] += int(lengths[i])
        if max(used) <= row_len:
            length = row_length_for(max(used), row_lengths)
            if best is None or n * length < best[0] * best[1]:
                best = (n, length, bins)
        n *= 2
    if best is None:
        return None
    n, length, bins = best
    per = min(n, 1 << (max_rows(length, tokens_per_batch).bit_length() - 1))
    rows = []
    for b in bins:
        segments, start = [], 0
        for i in b:
            segments.append(Segment(i, start, int(lengths[i])))
            start += int(lengths[i])
        rows.append(tuple(segments))
    return [Batch(length, tuple(rows[i : i + per])) for i in range(0, n, per)]


def pack_shard_batches(
    lengths: Sequence[int], *, row_len: int, row_lengths: Sequence[int], tokens_per_batch: int
) -> list[Batch]:
    """One data shard's packed batches, independent of how many shards there are.

    The balanced plan (:func:`pack_balanced`: one shape, 2^j batches, so no shard idles on a
    power-of-two mesh) where it takes at most ``BALANCED_SLACK`` more slots than
    first-fit-decreasing; else first-fit-decreasing rows grouped by padded length, longest
    first, each group cut into batches of ``tokens_per_batch // length`` rows, a last, short
    batch using the smallest R / 2^k rows that hold its rows (as in the bucketed planner).
    """
    ffd = _pack_ffd_batches(lengths, row_len, row_lengths, tokens_per_batch)
    balanced = pack_balanced(
        lengths, row_len=row_len, row_lengths=row_lengths, tokens_per_batch=tokens_per_batch
    )
    if balanced is not None and _slots(balanced) <= (1 + BALANCED_SLACK) * _slots(ffd):
        return balanced
    return ffd


def _slots(batches: Sequence[Batch]) -> int:
    return sum(b.num_rows * b.length for b in batches)


def _pack_ffd_batches(
    lengths: Sequence[int], row_len: int, row_lengths: Sequence[int], tokens_per_batch: int
) -> list[Batch]:
    by_length: dict[int, list[tuple[Segment, ...]]] = {}
    for row in pack_rows(lengths, row_len, row_lengths):
        used = row[-1].stop
        by_length.setdefault(row_length_for(used, row_lengths), []).append(row)
    batches: list[Batch] = []
    for length in sorted(by_length, reverse=True):
        group = by_length[length]
        per = max_rows(length, tokens_per_batch)
        pos = 0
        while pos < len(group):
            rows = per
            while rows // 2 >= len(group) - pos and rows > 1:
                rows //= 2
            take = group[pos : pos + rows]
            pos += len(take)
            batches.append(Batch(length, (*take, *([()] * (rows - len(take))))))
    return batches


@dataclass(frozen=True)
class BatchPlanner:
    """How a job cuts a unit's sequences into batches: packed, or one sequence per row
    padded to its length bucket (jobs that generate, or ``engine.packing: false``)."""

    max_seq_len: int
    tokens_per_batch: int
    packed: bool
    row_len: int

    @classmethod
    def of(cls, config: JobConfig, *, packed: bool) -> BatchPlanner:
        b = config.batching
        return cls(
            b.max_seq_len,
            b.tokens_per_batch,
            packed,
            min(config.engine.packed_row_length, b.max_seq_len),
        )

    def shard_batches(self, lengths: Sequence[int]) -> list[Batch]:
        if self.packed:
            return pack_shard_batches(
                lengths,
                row_len=self.row_len,
                row_lengths=packed_row_lengths(self.row_len, self.max_seq_len),
                tokens_per_batch=self.tokens_per_batch,
            )
        return plan_shard_batches(
            lengths, buckets=make_buckets(self.max_seq_len), tokens_per_batch=self.tokens_per_batch
        )

    def batches(self, lengths: Sequence[int], n_shards: int) -> list[Batch]:
        return stack_shards(self.shard_batches(lengths), n_shards)
