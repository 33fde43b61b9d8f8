"""Per-token annotations of a prompt: role, example, and for grid cells row, column, colour.

Derived from the prompt builder's own layout (:func:`arcx.prompts.builder.layout_messages`
marks where every grid lies in the rendered prompt), each encoder's character layout (which
characters of a grid's text belong to which cell) and the tokenizer's character offsets.
Pure: a prompt in, integer arrays out.

Rules, one per annotation (docs/activation-store.md repeats them):

- ``role`` (:class:`Role`): a special token of the tokenizer is ``SPECIAL`` (the chat
  markup and the end-of-turn token closing the answer); any other token takes the role of
  its first character: inside a train input, train output, test input or answer grid's
  text (its fences, shape header and row numbers included) that grid's role, else
  ``TEMPLATE``.
- ``example``: the 0-based train pair index for ``TRAIN_INPUT``/``TRAIN_OUTPUT``, else -1.
- ``row``, ``col``, ``colour``: of the first cell any character of the token belongs to,
  in the grid as the prompt shows it (after augmentation); -1 for a token that covers no
  cell (row numbers, separators, newlines, fences, template text).
- ``cells``: how many distinct cells the token's characters cover: 0 for a non-cell, 1
  usually; more when a tokenizer merges several cells into one token (a BPE over the
  ``ReplaceNumberEncoder`` symbols does), so a filter on ``cells == 1`` keeps exact cells.

:func:`original_cells` maps cells back to the task before augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from arcx.prompts import builder, templates
from arcx.prompts.augment import Augmentation, dihedral, inverse_dihedral
from arcx.prompts.encoders import (
    GridCodeBlockEncoder,
    GridEncoder,
    GridShapeEncoder,
    GridWithSeparationEncoder,
    MinimalGridEncoder,
    RepeatNumberEncoder,
    ReplaceNumberEncoder,
    RowNumberEncoder,
)
from arcx.tasks.task import Grid, Task


class Role(IntEnum):
    """What a token is part of. The values are stored (``ann.role``): never renumber."""

    TEMPLATE = 0  # prompt words, headings, chat markup that is not a special token
    SPECIAL = 1  # a special token of the tokenizer (<|im_start|>, <|im_end|>, ...)
    TRAIN_INPUT = 2
    TRAIN_OUTPUT = 3
    TEST_INPUT = 4
    ANSWER = 5  # the teacher-forced answer grid (its end-of-turn token is SPECIAL)


NOT_A_CELL = -1
_KIND_ROLE = {
    builder.TRAIN_INPUT: Role.TRAIN_INPUT,
    builder.TRAIN_OUTPUT: Role.TRAIN_OUTPUT,
    builder.TEST_INPUT: Role.TEST_INPUT,
}
Cell = tuple[int, int] | None  # the (row, col) a character of a grid's text writes, or None


class AnnotationError(ValueError):
    """The prompt could not be annotated (a template or tokenizer the layout cannot follow)."""


@dataclass(frozen=True)
class TokenAnnotations:
    """int32 arrays, one entry per token of the sequence."""

    role: np.ndarray
    example: np.ndarray
    row: np.ndarray
    col: np.ndarray
    colour: np.ndarray
    cells: np.ndarray

    FIELDS = ("role", "example", "row", "col", "colour", "cells")

    def __len__(self) -> int:
        return len(self.role)

    def take(self, index: np.ndarray) -> TokenAnnotations:
        """The annotations of the kept positions ``index``."""
        return TokenAnnotations(*(getattr(self, f)[index] for f in self.FIELDS))


# -- which characters of a grid's text write which cell ------------------------------------


def _lines_map(text: str, cells: list[Cell]) -> list[tuple[str, list[Cell]]]:
    out: list[tuple[str, list[Cell]]] = []
    start = 0
    for i, ch in enumerate([*text, "\n"]):
        if ch == "\n":
            out.append((text[start:i], cells[start:i]))
            start = i + 1
    return out


def _join_lines(lines: list[tuple[str, list[Cell]]]) -> list[Cell]:
    out: list[Cell] = []
    for i, (_, cells) in enumerate(lines):
        if i:
            out.append(None)
        out.extend(cells)
    return out


def _minimal(enc: MinimalGridEncoder, grid: Grid) -> list[Cell]:
    return _join_lines([("", [(r, c) for c in range(len(row))]) for r, row in enumerate(grid)])


def _separated(enc: GridWithSeparationEncoder, grid: Grid) -> list[Cell]:
    gap: list[Cell] = [None] * len(enc.split_symbol)
    lines = []
    for r, row in enumerate(grid):
        cells: list[Cell] = []
        for c in range(len(row)):
            cells.extend([*(gap if c else []), (r, c)])
        lines.append(("", cells))
    return _join_lines(lines)


def _repeated(enc: RepeatNumberEncoder, grid: Grid) -> list[Cell]:
    return _join_lines(
        [
            ("", [(r, c) for c in range(len(row)) for _ in range(enc.n)])
            for r, row in enumerate(grid)
        ]
    )


def _fenced(head: str) -> Callable[[Any, Grid], list[Cell]]:
    def cells(enc: Any, grid: Grid) -> list[Cell]:
        header = head(grid) if callable(head) else head
        return [*([None] * (len(header) + 1)), *cell_map(enc.encoder, grid), *([None] * 4)]

    return cells


def _row_numbers(enc: RowNumberEncoder, grid: Grid) -> list[Cell]:
    lines = _lines_map(enc.encoder.to_text(grid), cell_map(enc.encoder, grid))
    return _join_lines(
        [(t, [*([None] * len(f"{i} ")), *cells]) for i, (t, cells) in enumerate(lines, start=1)]
    )


def _replaced(enc: ReplaceNumberEncoder, grid: Grid) -> list[Cell]:
    return cell_map(enc.encoder, grid)  # one symbol for one digit: the layout is unchanged


_CELL_MAPS: dict[type[GridEncoder], Callable[[Any, Grid], list[Cell]]] = {
    MinimalGridEncoder: _minimal,
    GridWithSeparationEncoder: _separated,
    RepeatNumberEncoder: _repeated,
    GridCodeBlockEncoder: _fenced(GridCodeBlockEncoder.HEADER),
    GridShapeEncoder: _fenced(lambda g: f"{GridShapeEncoder.HEADER}{len(g)}x{len(g[0])}"),  # type: ignore[arg-type]
    RowNumberEncoder: _row_numbers,
    ReplaceNumberEncoder: _replaced,
}


def cell_map(encoder: GridEncoder, grid: Grid) -> list[Cell]:
    """For each character of ``encoder.to_text(grid)``: the (row, col) it writes, or None."""
    fn = _CELL_MAPS.get(type(encoder))
    if fn is None:
        raise AnnotationError(f"no cell layout for the encoder {type(encoder).__name__}")
    return fn(encoder, grid)


# -- the prompt's characters ---------------------------------------------------------------

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters: never in a template or grid


@dataclass(frozen=True)
class _Slot:
    role: Role
    example: int
    grid: Grid


def _char_layout(
    task: Task, test_index: int, encoder: GridEncoder, tokenizer: Any
) -> tuple[str, list[tuple[int, int, _Slot]]]:
    """The prompt text and where each grid's text lies in it, from the builder's layout."""
    slots: list[_Slot] = []

    def mark(grid: Grid, kind: str, example: int) -> str:
        slots.append(_Slot(_KIND_ROLE[kind], example, grid))
        return f"{_OPEN}{len(slots) - 1}{_CLOSE}"

    messages = builder.layout_messages(task, test_index, mark)
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    marked = rendered + templates.ASSISTANT_PREFIX
    text: list[str] = []
    spans: list[tuple[int, int, _Slot]] = []
    pos = 0
    for piece_index, piece in enumerate(marked.split(_OPEN)):
        if piece_index == 0:
            text.append(piece)
            pos += len(piece)
            continue
        number, sep, rest = piece.partition(_CLOSE)
        if not sep or not number.isdigit() or int(number) >= len(slots):
            raise AnnotationError("the chat template changed the prompt's grid markers")
        slot = slots[int(number)]
        grid_text = encoder.to_text(slot.grid)
        spans.append((pos, pos + len(grid_text), slot))
        text.extend([grid_text, rest])
        pos += len(grid_text) + len(rest)
    if len(spans) != len(slots):
        raise AnnotationError("the chat template dropped or repeated a grid")
    return "".join(text), spans


def _token_annotations(
    n_chars: int,
    spans: Sequence[tuple[int, int, _Slot]],
    encoder: GridEncoder,
    ids: Sequence[int],
    offsets: Sequence[tuple[int, int]],
    special_ids: set[int],
) -> TokenAnnotations:
    role = np.full(n_chars, int(Role.TEMPLATE), np.int32)
    example = np.full(n_chars, -1, np.int32)
    cell_id = np.full(n_chars, -1, np.int64)  # slot * 1024 * 1024 + row * 1024 + col
    grids: dict[int, Grid] = {}
    for s, (a, b, slot) in enumerate(spans):
        role[a:b] = int(slot.role)
        example[a:b] = slot.example
        grids[s] = slot.grid
        for i, cell in enumerate(cell_map(encoder, slot.grid)):
            if cell is not None:
                cell_id[a + i] = (s << 20) | (cell[0] << 10) | cell[1]
    n = len(ids)
    out = {f: np.full(n, -1, np.int32) for f in TokenAnnotations.FIELDS}
    out["role"][:] = int(Role.TEMPLATE)
    out["cells"][:] = 0
    for t, (tid, (a, b)) in enumerate(zip(ids, offsets, strict=True)):
        if tid in special_ids:
            out["role"][t] = int(Role.SPECIAL)
            continue
        if a >= n_chars:
            continue
        out["role"][t], out["example"][t] = role[a], example[a]
        covered = cell_id[a : max(b, a + 1)]
        covered = covered[covered >= 0]
        if len(covered):
            first = int(covered[0])
            s, r, c = first >> 20, (first >> 10) & 1023, first & 1023
            out["row"][t], out["col"][t], out["colour"][t] = r, c, grids[s][r][c]
            out["cells"][t] = len(np.unique(covered))
    return TokenAnnotations(**out)


def _tokenize(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def annotate_prompt(
    prompt: builder.Prompt, task: Task, encoder: GridEncoder, tokenizer: Any
) -> TokenAnnotations:
    """The annotations of every token of ``prompt`` (built by :func:`builder.build_prompt`
    from ``task``, as the prompt shows it, with ``encoder`` and ``tokenizer``).

    Raises AnnotationError when the layout does not reproduce the prompt's own text and ids
    (a chat template that rewrites content, a slow tokenizer without offsets).
    """
    text, spans = _char_layout(task, prompt.test_index, encoder, tokenizer)
    if text != prompt.prompt_text:
        raise AnnotationError(f"task {task.task_id}: the layout does not rebuild the prompt text")
    special = set(tokenizer.all_special_ids)
    ids, offsets = _tokenize(tokenizer, text)
    if ids != list(prompt.input_ids[: prompt.prompt_len]):
        raise AnnotationError(f"task {task.task_id}: the tokenizer's offsets disagree with the ids")
    parts = [_token_annotations(len(text), spans, encoder, ids, offsets, special)]
    if prompt.answer_span is not None:
        output = task.test[prompt.test_index].output
        assert output is not None  # build_prompt refuses teacher forcing without it
        answer = encoder.to_text(output)
        a_ids, a_offsets = _tokenize(tokenizer, answer)
        a_ids.append(prompt.input_ids[-1])  # the end-of-turn token
        a_offsets.append((len(answer), len(answer)))
        if a_ids != list(prompt.input_ids[prompt.prompt_len :]):
            raise AnnotationError(f"task {task.task_id}: the answer's ids disagree")
        slot = _Slot(Role.ANSWER, -1, output)
        parts.append(
            _token_annotations(
                len(answer), [(0, len(answer), slot)], encoder, a_ids, a_offsets, special
            )
        )
    return TokenAnnotations(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in TokenAnnotations.FIELDS)
    )


# -- back to the original task ---------------------------------------------------------------


def original_cells(
    row: np.ndarray, col: np.ndarray, colour: np.ndarray, shape: tuple[int, int], aug: Augmentation
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells of one augmented grid of ``shape`` (as the prompt shows it) -> the same cells
    in the original task: (row, col, colour) before the dihedral transform and the colour
    permutation. Entries that are not cells (-1) stay -1."""
    h, w = shape
    dummy = tuple(tuple(0 for _ in range(w)) for _ in range(h))
    h0, w0 = len(back := dihedral(dummy, inverse_dihedral(aug.dihedral))), len(back[0])
    index = tuple(tuple(r * w0 + c for c in range(w0)) for r in range(h0))
    where = np.asarray(dihedral(index, aug.dihedral), np.int64)  # augmented pos -> original
    inverse = np.asarray(aug.inverse().colors, np.int64)
    cell = row >= 0
    flat = np.where(cell, where[np.where(cell, row, 0), np.where(cell, col, 0)], -1)
    return (
        np.where(cell, flat // w0, -1).astype(np.int32),
        np.where(cell, flat % w0, -1).astype(np.int32),
        np.where(cell, inverse[np.where(cell, colour, 0)], -1).astype(np.int32),
    )


# -- selecting tokens by annotation ----------------------------------------------------------


@dataclass(frozen=True)
class TokenFilter:
    """Which stored tokens to keep, by annotation: every given condition must hold.

    ``TokenFilter(roles=(Role.ANSWER,), cells_only=True)``: only answer cells;
    ``TokenFilter(roles=(Role.TEST_INPUT,), colours=(3,))``: only colour 3 in test inputs.
    Colours are as the prompt shows them (after augmentation).
    """

    roles: tuple[Role, ...] | None = None
    examples: tuple[int, ...] | None = None
    colours: tuple[int, ...] | None = None
    cells_only: bool = False

    def mask(self, ann: dict[str, np.ndarray]) -> np.ndarray:
        """A bool mask over tokens from their ``role``, ``example``, ``colour``, ``cells``."""
        keep = np.ones(len(ann["role"]), bool)
        if self.roles is not None:
            keep &= np.isin(ann["role"], [int(r) for r in self.roles])
        if self.examples is not None:
            keep &= np.isin(ann["example"], list(self.examples))
        if self.colours is not None:
            keep &= np.isin(ann["colour"], list(self.colours))
        if self.cells_only:
            keep &= ann["cells"] > 0
        return keep

    @classmethod
    def parse(cls, text: str) -> TokenFilter:
        """``"role=answer,test_input colour=3 example=0 cells"`` -> a filter; ValueError
        naming the word it cannot read."""
        kw: dict[str, Any] = {}
        for word in text.split():
            key, _, value = word.partition("=")
            try:
                if key == "cells" and not value:
                    kw["cells_only"] = True
                elif key == "role":
                    kw["roles"] = tuple(Role[v.upper()] for v in value.split(","))
                elif key in ("example", "colour", "color"):
                    name = "examples" if key == "example" else "colours"
                    kw[name] = tuple(int(v) for v in value.split(","))
                else:
                    raise ValueError
            except (KeyError, ValueError):
                roles = ", ".join(r.name.lower() for r in Role)
                raise ValueError(
                    f"cannot read {word!r}: expected role=<{roles}>[,...], example=N[,...], "
                    "colour=N[,...] or cells"
                ) from None
        return cls(**kw)
