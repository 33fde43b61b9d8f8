"""Reversible task augmentations: the 8 dihedral transforms and colour permutations.

Dihedral index ``k``: 0..3 rotate by ``k`` quarter turns counter-clockwise (numpy's
``rot90`` convention); 4..7 transpose first, then rotate by ``k - 4`` quarter turns.
Rotations invert to ``(4 - k) % 4``; the four reflections are their own inverses.

A colour permutation is a tuple ``colors`` of the ten colours: cell value ``c`` becomes
``colors[c]``. Random permutations keep 0 (the usual background) and shuffle 1..9.

An augmentation applies the permutation and then the dihedral transform (they commute);
``invert_grid`` undoes both, so a prediction made on an augmented task maps back.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace
from typing import Literal

from arcx.tasks.task import Grid, Pair, Task

IDENTITY_COLORS: tuple[int, ...] = tuple(range(10))


def rot90(grid: Grid) -> Grid:
    """One quarter turn counter-clockwise."""
    return tuple(zip(*grid, strict=True))[::-1]


def transpose(grid: Grid) -> Grid:
    return tuple(zip(*grid, strict=True))


def dihedral(grid: Grid, k: int) -> Grid:
    if not 0 <= k < 8:
        raise ValueError(f"dihedral index must be 0..7, not {k}")
    if k >= 4:
        grid = transpose(grid)
    for _ in range(k % 4):
        grid = rot90(grid)
    return grid


def inverse_dihedral(k: int) -> int:
    return (4 - k) % 4 if k < 4 else k


@dataclass(frozen=True)
class Augmentation:
    dihedral: int = 0
    colors: tuple[int, ...] = IDENTITY_COLORS

    def __post_init__(self) -> None:
        if not 0 <= self.dihedral < 8:
            raise ValueError(f"dihedral index must be 0..7, not {self.dihedral}")
        if sorted(self.colors) != list(IDENTITY_COLORS):
            raise ValueError(f"colors must be a permutation of 0..9, not {self.colors}")

    @property
    def is_identity(self) -> bool:
        return self.dihedral == 0 and self.colors == IDENTITY_COLORS

    def inverse(self) -> Augmentation:
        inv = [0] * 10
        for c, new in enumerate(self.colors):
            inv[new] = c
        return Augmentation(inverse_dihedral(self.dihedral), tuple(inv))

    def apply_grid(self, grid: Grid) -> Grid:
        colors = self.colors
        recoloured = tuple(tuple(colors[c] for c in row) for row in grid)
        return dihedral(recoloured, self.dihedral)

    def invert_grid(self, grid: Grid) -> Grid:
        return self.inverse().apply_grid(grid)

    def _pair(self, pair: Pair) -> Pair:
        out = None if pair.output is None else self.apply_grid(pair.output)
        return Pair(self.apply_grid(pair.input), out)

    def apply_task(self, task: Task) -> Task:
        """The same task seen through this augmentation; it keeps its task id."""
        if self.is_identity:
            return task
        meta = {**task.metadata, "augmentation": self.to_dict()}
        return replace(
            task,
            train=tuple(self._pair(p) for p in task.train),
            test=tuple(self._pair(p) for p in task.test),
            metadata=meta,
        )

    def to_dict(self) -> dict[str, object]:
        return {"dihedral": self.dihedral, "colors": list(self.colors)}


def choose_augmentation(
    task_id: str,
    dihedral: Literal["identity", "random"] = "identity",
    permute_colors: bool = False,
    seed: int = 0,
) -> Augmentation:
    """The augmentation for one task: a function of (task id, options, seed) only."""
    if dihedral not in ("identity", "random"):
        raise ValueError(f"dihedral must be 'identity' or 'random', not {dihedral!r}")
    digest = hashlib.sha256(f"{seed}:{task_id}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    k = rng.randrange(8) if dihedral == "random" else 0
    colors = IDENTITY_COLORS
    if permute_colors:
        rest = list(range(1, 10))
        rng.shuffle(rest)
        colors = (0, *rest)
    return Augmentation(k, colors)
