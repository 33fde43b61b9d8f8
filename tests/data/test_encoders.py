"""Grid encoders: encode -> parse is the identity; malformed text is refused clearly; specs parse safely."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcx.prompts import EncoderSpecError, EncodingError, parse_encoder
from arcx.prompts.encoders import ENCODERS
from arcx.tasks.task import Grid

from .strategies import grids

BASES = [
    "MinimalGridEncoder()",
    "GridWithSeparationEncoder('|')",
    "GridWithSeparationEncoder(' ')",
    "RepeatNumberEncoder(3)",
    "RepeatNumberEncoder(n=1)",
]
WRAPPERS = [
    "GridCodeBlockEncoder({})",
    "GridShapeEncoder({})",
    "RowNumberEncoder({})",
    "ReplaceNumberEncoder({})",
]


def compositions() -> list[str]:
    specs = list(BASES)
    for base in BASES:
        for w1 in WRAPPERS:
            specs.append(w1.format(base))
            for w2 in WRAPPERS:
                if not (w1 == w2 == WRAPPERS[-1]):  # one ReplaceNumberEncoder at most
                    specs.append(w2.format(w1.format(base)))
    return specs


SPECS = compositions()


def test_every_encoder_is_covered() -> None:
    used = {name for name in ENCODERS if any(name + "(" in s for s in SPECS)}
    assert used == set(ENCODERS)


@settings(max_examples=300, deadline=None)
@given(grid=grids(), spec=st.sampled_from(SPECS))
def test_encode_then_parse_is_identity(grid: Grid, spec: str) -> None:
    encoder = parse_encoder(spec)
    assert encoder.to_grid(encoder.to_text(grid)) == grid


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trips(spec: str) -> None:
    encoder = parse_encoder(spec)
    assert parse_encoder(encoder.spec()) == encoder


def test_default_encoder_text() -> None:
    encoder = parse_encoder("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))")
    assert encoder.to_text(((1, 2, 3), (4, 5, 6))) == "```grid shape: 2x3\n1 123\n2 456\n```"


@pytest.mark.parametrize(
    ("spec", "grid", "text"),
    [
        ("MinimalGridEncoder()", ((0, 1), (2, 3)), "01\n23"),
        ("GridWithSeparationEncoder('|')", ((0, 1), (2, 3)), "0|1\n2|3"),
        ("RepeatNumberEncoder(2)", ((0, 1),), "0011"),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", ((7,),), "```grid\n7\n```"),
        ("ReplaceNumberEncoder(MinimalGridEncoder())", ((0, 9),), "ñĞ"),
        (
            "RowNumberEncoder(MinimalGridEncoder())",
            tuple((i % 10,) for i in range(11)),
            "\n".join(f"{i + 1} {i % 10}" for i in range(11)),
        ),
    ],
)
def test_known_texts(spec: str, grid: Grid, text: str) -> None:
    encoder = parse_encoder(spec)
    assert encoder.to_text(grid) == text
    assert encoder.to_grid(text) == grid


@pytest.mark.parametrize(
    ("spec", "text", "reason"),
    [
        ("MinimalGridEncoder()", "", "the text is empty"),
        ("MinimalGridEncoder()", "012\n01", "not rectangular"),
        ("MinimalGridEncoder()", "01a", "line 1 is '01a'"),
        ("MinimalGridEncoder()", "0" * 31, "31 cells"),
        ("GridWithSeparationEncoder('|')", "0|12", "single digits separated by '|'"),
        ("RepeatNumberEncoder(3)", "000112", "every digit repeated 3 times"),
        (
            "RowNumberEncoder(MinimalGridEncoder())",
            "1 01\n3 01",
            "line 2 is '3 01'; expected it to start with '2 '",
        ),
        ("GridShapeEncoder(MinimalGridEncoder())", "```grid shape: 2x2\n01\n01", "no closing ```"),
        (
            "GridShapeEncoder(MinimalGridEncoder())",
            "```grid shape: 2x3\n01\n01\n```",
            "says 2x3 but the grid is 2x2",
        ),
        (
            "GridShapeEncoder(MinimalGridEncoder())",
            "```grid shape: big\n01\n```",
            "does not give a shape",
        ),
        ("GridShapeEncoder(MinimalGridEncoder())", "01\n01", "no line starts with"),
        (
            "GridCodeBlockEncoder(MinimalGridEncoder())",
            "```grid x\n01\n```",
            "block header is '```grid x'",
        ),
        ("ReplaceNumberEncoder(MinimalGridEncoder())", "ñ1", "digits should have been written as"),
    ],
)
def test_malformed_text_is_refused_with_a_reason(spec: str, text: str, reason: str) -> None:
    with pytest.raises(EncodingError) as info:
        parse_encoder(spec).to_grid(text)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "expected name, found the end"),
        ("Foo()", "unknown encoder 'Foo'"),
        ("__import__('os').system('true')", "unexpected character '.'"),
        ("__import__('os')", "unknown encoder '__import__'"),
        ("MinimalGridEncoder(", "found the end"),
        ("MinimalGridEncoder())", "column 21: expected end"),
        ("RowNumberEncoder()", "missing a required argument"),
        ("RowNumberEncoder(3)", "wraps a GridEncoder"),
        ("RepeatNumberEncoder('3')", "n must be an integer"),
        ("RepeatNumberEncoder(0)", "n must be 1..10"),
        ("GridWithSeparationEncoder(1)", "split_symbol must be a string"),
        ("GridWithSeparationEncoder('1')", "without digits"),
        ("MinimalGridEncoder(x=1)", "unexpected keyword argument 'x'"),
        ("RepeatNumberEncoder(n=2, 3)", "positional argument after a keyword"),
        ("MinimalGridEncoder() ; x", "unexpected character ';'"),
        (
            "ReplaceNumberEncoder(RowNumberEncoder(ReplaceNumberEncoder(MinimalGridEncoder())))",
            "ReplaceNumberEncoder inside another",
        ),
    ],
)
def test_bad_specs_are_refused(spec: str, reason: str) -> None:
    with pytest.raises(EncoderSpecError) as info:
        parse_encoder(spec)
    assert reason in str(info.value)


def test_spec_whitespace_and_quotes() -> None:
    a = parse_encoder(' GridShapeEncoder( GridWithSeparationEncoder( "|" ) ) ')
    assert a == parse_encoder("GridShapeEncoder(GridWithSeparationEncoder('|'))")
