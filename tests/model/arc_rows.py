"""Real ARC prompts as token ids, and a plain packer for them: helpers of the model tests."""

from __future__ import annotations

import numpy as np


def arc_prompt_ids(tokenizer: object, *, side: int, n_train: int, seed: int) -> list[int]:
    """The token ids of a real ARC prompt (default encoder, chat template, teacher-forced
    answer) for a random task of ``n_train`` pairs of side x side grids."""
    from arcx.config import DEFAULT_ENCODER
    from arcx.prompts import build_prompt
    from arcx.prompts.encoder_spec import parse_encoder
    from arcx.tasks.task import Pair, Task

    rng = np.random.default_rng(seed)

    def grid() -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(int(v) for v in row) for row in rng.integers(0, 10, (side, side)))

    pairs = tuple(Pair(grid(), grid()) for _ in range(n_train + 1))
    task = Task(f"random-{seed}", pairs[:-1], pairs[-1:])
    prompt = build_prompt(task, 0, parse_encoder(DEFAULT_ENCODER), tokenizer, teacher_forcing=True)
    return list(prompt.input_ids)


def pack(sequences: list[list[int]], rows: int, length: int) -> dict[str, np.ndarray]:
    """Sequences laid into ``rows`` rows of ``length`` in order, each row filled before the next;
    ids, segment ids (1.. per row, 0 = padding), positions (restarting per segment), and
    where each sequence went: ``place[k] = (row, start)``."""
    ids = np.zeros((rows, length), np.int32)
    seg = np.zeros((rows, length), np.int32)
    pos = np.zeros((rows, length), np.int32)
    place = []
    row, col, n_seg = 0, 0, 0
    for s in sequences:
        if col + len(s) > length:
            row, col, n_seg = row + 1, 0, 0
        assert row < rows and len(s) <= length, "sequences do not fit"
        n_seg += 1
        ids[row, col : col + len(s)] = s
        seg[row, col : col + len(s)] = n_seg
        pos[row, col : col + len(s)] = np.arange(len(s))
        place.append((row, col))
        col += len(s)
    return {"ids": ids, "segment_ids": seg, "positions": pos, "place": np.array(place)}
