"""A batch plan -> the host arrays the device programs read. Pure.

For every row: the token ids of its segments side by side, the segment ids (1..n in slot
order, 0 = padding), the positions (restarting at 0 in every segment), the logit positions
of the answer tokens (teacher-forced scoring: the logits at slot ``p`` predict token
``p + 1``), and the gather indices of the kept positions. Generation reads one prompt per
row, so it is only built for unpacked batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from arcx.runner.batching import Batch, Gather, answer_width, plan_gather


class SequenceLike(Protocol):
    @property
    def input_ids(self) -> np.ndarray: ...
    @property
    def prompt_len(self) -> int: ...
    @property
    def answer_span(self) -> tuple[int, int] | None: ...


@dataclass(frozen=True)
class Answer:
    """Where one sequence's teacher-forced guesses sit in its row's logit positions."""

    seq: int
    row: int
    offset: int  # first column in ``logit_positions[row]``
    count: int


@dataclass(frozen=True)
class DeviceInputs:
    batch: Batch
    ids: np.ndarray  # [R, L] int32, the pad token at padding
    segment_ids: np.ndarray  # [R, L] int32, 1..n per row, 0 = padding
    positions: np.ndarray  # [R, L] int32, 0.. within each segment, 0 at padding
    logit_positions: np.ndarray | None  # [R, A] int32, None when nothing is scored
    answers: tuple[Answer, ...]
    gather: Gather
    gen_ids: np.ndarray | None = None  # [R, L] the prompt only (unpacked rows)
    gen_mask: np.ndarray | None = None  # [R, L] int32, 1 at the prompt

    @property
    def real_tokens(self) -> int:
        return int(np.count_nonzero(self.segment_ids))

    @property
    def padded_tokens(self) -> int:
        return int(self.segment_ids.size)


def build_inputs(
    batch: Batch,
    seqs: Sequence[SequenceLike],
    keep: Sequence[np.ndarray],
    *,
    pad_token_id: int,
    scoring: bool,
    generation: bool,
) -> DeviceInputs:
    """The arrays for ``batch``; ``seqs`` and ``keep`` are indexed by the batch's ``seq``."""
    r, length = batch.num_rows, batch.length
    ids = np.full((r, length), pad_token_id, np.int32)
    segment_ids = np.zeros((r, length), np.int32)
    positions = np.zeros((r, length), np.int32)
    answers: list[Answer] = []
    logit_cols: list[list[np.ndarray]] = [[] for _ in range(r)]
    for row, segments in enumerate(batch.rows):
        width = 0
        for n, seg in enumerate(segments, start=1):
            s = seqs[seg.seq]
            if len(s.input_ids) != seg.length:
                raise ValueError(
                    f"sequence {seg.seq} has {len(s.input_ids)} tokens, its segment {seg.length}"
                )
            ids[row, seg.start : seg.stop] = s.input_ids
            segment_ids[row, seg.start : seg.stop] = n
            positions[row, seg.start : seg.stop] = np.arange(seg.length, dtype=np.int32)
            if scoring and s.answer_span:
                a0, a1 = s.answer_span
                logit_cols[row].append(np.arange(a0 - 1, a1 - 1, dtype=np.int32) + seg.start)
                answers.append(Answer(seg.seq, row, width, a1 - a0))
                width += a1 - a0
    logit_positions = None
    if scoring:
        longest = max((sum(len(c) for c in cols) for cols in logit_cols), default=0)
        logit_positions = np.zeros((r, answer_width(longest, length)), np.int32)
        for row, cols in enumerate(logit_cols):
            if cols:
                flat = np.concatenate(cols)
                logit_positions[row, : len(flat)] = flat
    gen_ids = gen_mask = None
    if generation:
        if batch.packed:
            raise ValueError("generation needs one sequence per row; plan it unpacked")
        gen_ids = np.full((r, length), pad_token_id, np.int32)
        gen_mask = np.zeros((r, length), np.int32)
        for row, segments in enumerate(batch.rows):
            for seg in segments:
                p = seqs[seg.seq].prompt_len
                gen_ids[row, :p] = seqs[seg.seq].input_ids[:p]
                gen_mask[row, :p] = 1
    return DeviceInputs(
        batch,
        ids,
        segment_ids,
        positions,
        logit_positions,
        tuple(answers),
        plan_gather(batch, keep),
        gen_ids,
        gen_mask,
    )
