"""barc generated problems -> ARC tasks, by a documented seeded rule.

A barc row holds ``examples`` (a list of ``[input, output]`` grid pairs), ``source`` (the
generating Python program, whose comments hold the concepts and description) and
``seeds``. The rule, with the defaults of :class:`BarcSplit`:

1. Every grid of every example is validated; one bad grid rejects the row.
2. A random generator is seeded from the SHA-256 of the prepare seed and every example's
   grids (in :func:`arcx.tasks.task.grid_bytes` form), so the split depends on the content
   and the seed only, never on the row's position or on the other rows.
3. The number of train pairs is drawn uniformly from ``min_train..max_train`` (2..3) and
   capped so that ``n_test`` (1) pairs are left for the test; a row needs at least
   ``1 + n_test`` examples.
4. The example indices are shuffled with the same generator; the first ones become the
   train pairs and the next ``n_test`` the test pairs. The rest are not used.
5. The program text, the seeds and the chosen example indices go into the task metadata.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from arcx.tasks.grids import InvalidRecord, validate_grid
from arcx.tasks.task import Pair, Task, grid_bytes, make_task


@dataclass(frozen=True)
class BarcSplit:
    min_train: int = 2
    max_train: int = 3
    n_test: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_train <= self.max_train or self.n_test < 1:
            raise ValueError(
                f"invalid barc split {self}: need 1 <= min_train <= max_train, n_test >= 1"
            )


DEFAULT_SPLIT = BarcSplit()


def _example_pairs(examples: Any) -> list[Pair]:
    if not isinstance(examples, list):
        raise InvalidRecord(f"examples is a {type(examples).__name__}, not a list of pairs")
    if not examples:
        raise InvalidRecord("examples is empty; a task needs at least 2 examples")
    pairs = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, list | tuple) or len(ex) != 2:
            raise InvalidRecord(f"examples[{i}] is not an [input, output] pair")
        pairs.append(
            Pair(
                validate_grid(ex[0], f"examples[{i}][0]"), validate_grid(ex[1], f"examples[{i}][1]")
            )
        )
    return pairs


def split_indices(pairs: list[Pair], *, seed: int, split: BarcSplit) -> tuple[list[int], list[int]]:
    """The (train, test) example indices chosen for these pairs: steps 2-4 of the rule."""
    n = len(pairs)
    if n < 1 + split.n_test:
        raise InvalidRecord(
            f"examples has {n} pair(s); a task needs at least {1 + split.n_test} "
            f"(1 train + {split.n_test} test)"
        )
    h = hashlib.sha256(f"{seed}:".encode())
    for pair in pairs:
        h.update(grid_bytes(pair.input))
        h.update(grid_bytes(pair.output))
    digest = h.digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    n_train = min(rng.randint(split.min_train, split.max_train), n - split.n_test)
    order = list(range(n))
    rng.shuffle(order)
    return order[:n_train], order[n_train : n_train + split.n_test]


def barc_row_to_task(
    row: dict[str, Any], metadata: dict[str, Any], *, seed: int, split: BarcSplit
) -> Task:
    pairs = _example_pairs(row["examples"])
    train_idx, test_idx = split_indices(pairs, seed=seed, split=split)
    meta = dict(metadata)
    meta["program"] = _program(row.get("source"))
    meta["seeds"] = _seeds(row.get("seeds"))
    meta["train_examples"] = train_idx
    meta["test_examples"] = test_idx
    return make_task(tuple(pairs[i] for i in train_idx), tuple(pairs[i] for i in test_idx), meta)


def _program(value: Any) -> str | None:
    """The generating program goes into the metadata as text, so it must be text."""
    if value is None or isinstance(value, str):
        return value
    raise InvalidRecord(f"source is a {type(value).__name__}, not the program's text")


def _seeds(value: Any) -> list[str | int] | None:
    """Seeds are names or numbers (a flat list), kept as metadata."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(s, str | int) and not isinstance(s, bool) for s in value
    ):
        raise InvalidRecord("seeds must be a list of strings or integers")
    return value
