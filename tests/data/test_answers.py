"""Answer parsing never raises: a grid, or 'unparseable' with the reason."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from arcx.prompts import parse_answer, parse_encoder

ENCODER = parse_encoder("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))")


def test_answer_with_end_of_turn_and_trailing_text() -> None:
    text = "```grid shape: 2x2\n1 01\n2 23\n```<|im_end|>\nmore text the model kept writing"
    parsed = parse_answer(text, ENCODER)
    assert parsed.ok and parsed.grid == ((0, 1), (2, 3)) and parsed.error is None


def test_truncated_answer_is_unparseable() -> None:
    parsed = parse_answer("```grid shape: 2x2\n1 01\n2 2", ENCODER)
    assert parsed.grid is None
    assert parsed.error.startswith("unparseable: ") and "no closing ```" in parsed.error


def test_wrong_shape_header_is_unparseable() -> None:
    parsed = parse_answer("```grid shape: 3x2\n1 01\n2 23\n```", ENCODER)
    assert parsed.grid is None and "says 3x2 but the grid is 2x2" in parsed.error


def test_non_text_is_unparseable() -> None:
    parsed = parse_answer(None, ENCODER)  # type: ignore[arg-type]
    assert parsed.grid is None and "expected text" in parsed.error


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("0123456789 \nx`gridshape:<|im_end>ñ")), max_size=80)
)
def test_never_raises(text: str) -> None:
    for spec in [
        "MinimalGridEncoder()",
        ENCODER.spec(),
        "ReplaceNumberEncoder(RepeatNumberEncoder(2))",
    ]:
        parsed = parse_answer(text, parse_encoder(spec))
        assert (parsed.grid is None) != (parsed.error is None)
