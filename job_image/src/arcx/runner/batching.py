"""Batching: sequences -> rows of a few fixed lengths -> batches within a token budget.

Pure functions. Every process of a slice computes the same batches from the same
sequence lengths, so they step through identical programs in the same order.

- Lengths are rounded up to a *bucket* from a small fixed set (geometric, ratio about
  1.5, multiples of 64, capped at maxSeqLen), so XLA compiles a bounded number of
  programs and padding stays small.
- ``tokensPerBatch`` is the budget of one data shard (a device, or a group of devices
  splitting the model). Each shard's batches are planned without regard to how many
  shards there are (``plan_shard_batches``), then stacked ``n_shards`` at a time; so the
  numbers written do not depend on the topology.
- Row r of a global batch lives on data shard r // (rows / n_shards).
- A row holds segments (:class:`Segment`): one sequence each here, several when packed
  (:mod:`arcx.runner.packing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALIGN = 64


def make_buckets(max_seq_len: int, *, smallest: int = 64, ratio: float = 1.5) -> tuple[int, ...]:
    out: list[int] = []
    size = min(smallest, max_seq_len)
    while size < max_seq_len:
        out.append(size)
        size = max(size + ALIGN, -(-int(size * ratio) // ALIGN) * ALIGN)
    out.append(max_seq_len)
    return tuple(out)


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if length <= b:
            return b
    raise ValueError(f"length {length} exceeds the largest bucket {buckets[-1]}")


def max_rows(bucket_len: int, tokens_per_batch: int) -> int:
    """Rows of one shard's batch: as many as the token budget holds, at least one."""
    return max(1, tokens_per_batch // bucket_len)


@dataclass(frozen=True)
class Segment:
    """One sequence's slots in a row: ``length`` contiguous slots from ``start``."""

    seq: int  # index of the sequence among the ones planned together (a unit's)
    start: int
    length: int

    @property
    def stop(self) -> int:
        return self.start + self.length


Row = tuple[Segment, ...]  # () = an empty filler row


@dataclass(frozen=True)
class Batch:
    length: int  # padded length L
    rows: tuple[Row, ...]  # segments per row, in slot order
    n_shards: int = 1

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    @property
    def packed(self) -> bool:
        return any(len(r) > 1 for r in self.rows)

    def shard_rows(self, shard: int) -> tuple[Row, ...]:
        per = self.num_rows // self.n_shards
        return self.rows[shard * per : (shard + 1) * per]


def plan_shard_batches(
    lengths: Sequence[int], *, buckets: Sequence[int], tokens_per_batch: int
) -> list[Batch]:
    """One data shard's unpacked batches (one sequence per row), independent of how many
    shards there are.

    Sequences sorted longest first (ties by index) are cut into consecutive batches, each
    holding sequences of one bucket only: a batch's length L is that bucket and it holds
    R = budget // L rows, so no sequence is padded past its own bucket. When fewer
    sequences of the bucket are left than R, the batch uses the smallest R / 2^k rows that
    hold them, so a nearly empty batch does not pay for a full one.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bucket_of = [bucket_for(lengths[i], buckets) for i in order]
    batches: list[Batch] = []
    pos = 0
    while pos < len(order):
        length = bucket_of[pos]
        end = pos
        while end < len(order) and bucket_of[end] == length:
            end += 1
        rows = max_rows(length, tokens_per_batch)
        while rows // 2 >= end - pos and rows > 1:
            rows //= 2
        take = order[pos : min(pos + rows, end)]
        pos += len(take)
        filled: list[Row] = [(Segment(i, 0, int(lengths[i])),) for i in take]
        batches.append(Batch(length, (*filled, *([()] * (rows - len(take))))))
    return batches


def stack_shards(shard_batches: Sequence[Batch], n_shards: int) -> list[Batch]:
    """Global batches: ``n_shards`` shard batches of the same shape stacked row-wise.

    Every shard batch is the same whatever the number of shards, and XLA computes a
    shard's rows the same way whether they sit on one device or beside others, so the
    activations written do not depend on the topology (tests/runner check it bit for bit).
    A shape without enough shard batches to fill every shard gets empty ones.
    """
    groups: dict[tuple[int, int], list[Batch]] = {}
    for b in shard_batches:
        groups.setdefault((b.length, b.num_rows), []).append(b)
    out: list[Batch] = []
    for (length, rows), group in groups.items():
        for i in range(0, len(group), n_shards):
            chunk = group[i : i + n_shards]
            stacked: list[Row] = [r for b in chunk for r in b.rows]
            stacked += [()] * (rows * (n_shards - len(chunk)))
            out.append(Batch(length, tuple(stacked), n_shards))
    return out


def plan_batches(
    lengths: Sequence[int], *, buckets: Sequence[int], tokens_per_batch: int, n_shards: int
) -> list[Batch]:
    """Unpacked global batches (the bucketed planner, stacked over ``n_shards``)."""
    return stack_shards(
        plan_shard_batches(lengths, buckets=buckets, tokens_per_batch=tokens_per_batch), n_shards
    )


def answer_width(longest_answer: int, length: int) -> int:
    """Logit positions computed per row: 1 without an answer, else L/4, L/2 or L (few shapes)."""
    if longest_answer <= 0:
        return 1
    for width in (length // 4, length // 2, length):
        if longest_answer <= width:
            return width
    raise ValueError(f"answer of {longest_answer} tokens does not fit a row of {length}")


def round_count(n: int) -> int:
    """Round a gathered-token count up to one of 4 steps per power of two (bounded shapes)."""
    if n <= 16:
        return 16
    top = 1 << (n - 1).bit_length()  # next power of two >= n
    step = top // 8
    return -(-n // step) * step


@dataclass(frozen=True)
class Gather:
    """Which (row, position) pairs each data shard keeps, padded to a common count K."""

    rows: np.ndarray  # [n_shards, K] int32, row index local to the shard
    cols: np.ndarray  # [n_shards, K] int32
    counts: tuple[int, ...]  # real entries per shard
    seq_counts: tuple[tuple[tuple[int, int], ...], ...]  # per shard: (sequence, n kept) in order


def plan_gather(batch: Batch, keep: Sequence[np.ndarray]) -> Gather:
    """Gather indices for the kept positions ``keep[seq]`` of every sequence in ``batch``
    (positions within the sequence; a packed segment's are shifted by its start)."""
    n_shards = batch.n_shards
    shard_r: list[np.ndarray] = []
    shard_c: list[np.ndarray] = []
    seq_counts: list[tuple[tuple[int, int], ...]] = []
    for s in range(n_shards):
        rs, cs, sc = [], [], []
        for local, row in enumerate(batch.shard_rows(s)):
            for seg in row:
                cols = np.asarray(keep[seg.seq], dtype=np.int32) + np.int32(seg.start)
                rs.append(np.full(len(cols), local, np.int32))
                cs.append(cols)
                sc.append((seg.seq, len(cols)))
        shard_r.append(np.concatenate(rs) if rs else np.zeros(0, np.int32))
        shard_c.append(np.concatenate(cs) if cs else np.zeros(0, np.int32))
        seq_counts.append(tuple(sc))
    counts = tuple(len(r) for r in shard_r)
    k = round_count(max(counts))
    rows = np.zeros((n_shards, k), np.int32)
    cols = np.zeros((n_shards, k), np.int32)
    for s in range(n_shards):
        rows[s, : counts[s]] = shard_r[s]
        cols[s, : counts[s]] = shard_c[s]
    return Gather(rows, cols, counts, tuple(seq_counts))


def kept_positions(
    rule: str, length: int, prompt_len: int, answer_span: tuple[int, int] | None
) -> np.ndarray:
    """Positions a sequence keeps under the positions rule (see docs/activation-store.md)."""
    if rule == "all":
        return np.arange(length, dtype=np.int32)
    if rule == "prompt":
        return np.arange(prompt_len, dtype=np.int32)
    if rule == "answer":
        if answer_span is None:
            raise ValueError("positions 'answer' needs teacher forcing (an answer in the sequence)")
        return np.arange(answer_span[0], answer_span[1], dtype=np.int32)
    if rule == "last":
        return np.array([prompt_len - 1], dtype=np.int32)
    raise ValueError(f"unknown positions rule {rule!r}")
