"""Property tests (hypothesis) for every parser that takes untrusted bytes or values.

Each parser may answer only with its result or its own documented error: never another
exception, never a hang. Where a trusted reference exists (``json.loads``, an encoder's own
``to_text``, a marker's own builder), the parser must agree with it. The example counts keep
this file to seconds; the coverage-guided fuzz targets in ``atheris_targets.py`` run longer
(docs/testing.md, "Fuzzing").
"""

from __future__ import annotations

import contextlib
import json

import pytest
from arcx_store.errors import StoreFormatError
from arcx_store.header import HeaderError, read_header
from arcx_store.manifest import parse_manifest
from arcx_store.markers import FileInfo, build_marker, marker_files, parse_marker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcx.prompts.answers import END_MARKERS, parse_answer
from arcx.prompts.encoder_spec import EncoderSpecError, parse_encoder
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
from arcx.tasks.convert import record_to_task
from arcx.tasks.grids import MAX_SIDE, InvalidGrid, InvalidRecord, validate_grid
from arcx.tasks.json_elements import InvalidJSON, iter_json_elements
from arcx.tasks.sources import decode_row
from arcx.tasks.task import Task

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- values a hostile row can hold ---------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)
near_cells = st.integers(-2, 12) | st.booleans() | st.just(1.0) | st.just("1") | st.none()
near_rows = st.lists(near_cells, min_size=0, max_size=MAX_SIDE + 2)
near_grids = st.lists(near_rows, min_size=0, max_size=MAX_SIDE + 2) | json_values


@st.composite
def grids(draw: st.DrawFn, max_side: int = 8) -> tuple[tuple[int, ...], ...]:
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return tuple(tuple(draw(st.lists(st.integers(0, 9), min_size=w, max_size=w))) for _ in range(h))


@FAST
@given(near_grids)
def test_validate_grid_returns_a_valid_grid_or_says_why(value: object) -> None:
    try:
        grid = validate_grid(value, "g")
    except InvalidGrid as err:
        assert str(err).startswith("g: ")
        return
    assert 1 <= len(grid) <= MAX_SIDE
    assert len({len(r) for r in grid}) == 1 and 1 <= len(grid[0]) <= MAX_SIDE
    assert all(type(c) is int and 0 <= c <= 9 for r in grid for c in r)


def _mutations(base: dict) -> st.SearchStrategy[object]:
    """A valid record with one of its parts replaced by anything."""
    paths = [("train",), ("test",), ("train", 0), ("train", 0, "input"), ("test", 0, "output")]

    @st.composite
    def mutate(draw: st.DrawFn) -> object:
        rec = json.loads(json.dumps(base))
        *parents, last = draw(st.sampled_from(paths))
        node = rec
        for k in parents:
            node = node[k]
        node[last] = draw(near_grids)
        return rec

    return mutate()


ARC_RECORD = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3]]}]}
BARC_RECORD = {"examples": [[[[1]], [[2]]], [[[3]], [[4]]], [[[5]], [[6]]]], "source": "x"}


@FAST
@given(json_values | _mutations(ARC_RECORD) | st.fixed_dictionaries({"examples": near_grids}))
def test_record_to_task_gives_a_task_or_an_invalid_record(record: object) -> None:
    try:
        task = record_to_task(record, {"row": 1}, seed=0)
    except InvalidRecord:
        return
    assert isinstance(task, Task) and task.train and task.test


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_decode_row_never_raises(raw: bytes) -> None:
    value, error = decode_row(raw)
    assert (error is None) or (value is None and isinstance(error, str))


@FAST
@given(st.integers(1, 20_000), st.sampled_from("[{"))
def test_decode_row_rejects_any_depth_without_raising(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = (opener + ('"k":' if opener == "{" else "")) * depth + "1" + closer * depth
    _, error = decode_row(text.encode())
    assert error is None or "nested too deeply" in error or "not valid JSON" in error


# -- .json documents, element by element, against json.loads --------------------------------


def _reference(text: str) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        return RecursionError
    except ValueError:
        return ValueError


@FAST
@given(st.lists(json_values, max_size=5) | st.dictionaries(st.text(max_size=5), json_values))
def test_elements_of_a_valid_document_equal_json_loads(doc: object) -> None:
    text = json.dumps(doc, indent=1)
    kind, elements = iter_json_elements(text, "doc", max_bytes=10**9)
    got = list(elements)
    assert all(e.error is None for e in got)
    if isinstance(doc, list):
        assert kind == "list" and [e.value for e in got] == doc
    else:
        assert kind == "object" and {e.key: e.value for e in got} == doc


@FAST
@given(st.text(alphabet='[]{}",:\\ 0123aé\n', max_size=60))
def test_elements_of_any_text_agree_with_json_loads(text: str) -> None:
    ref = _reference(text)
    try:
        kind, elements = iter_json_elements(text, "doc", max_bytes=10**9)
        got = list(elements)
    except InvalidJSON:
        assert ref is ValueError
        return
    assert ref is not ValueError
    if kind == "list" and ref is not RecursionError:
        assert [e.value for e in got] == ref
    elif kind == "object" and ref is not RecursionError:
        assert {e.key: e.value for e in got} == ref  # json.loads keeps the last of a repeated key


@FAST
@given(
    json_values,
    json_values,
    st.text(alphabet='[]{}"\\x', max_size=20),
    st.sampled_from([3, 100_000]),
    st.sampled_from("[{"),
)
def test_a_too_deep_element_is_skipped_and_its_neighbours_read(
    before: object, after: object, inside: str, depth: int, opener: str
) -> None:
    """The bracket scanner must see brackets and escaped quotes inside strings as text."""
    key = '"k":' if opener == "{" else ""
    closer = "]" if opener == "[" else "}"
    deep = (opener + key) * depth + json.dumps(inside) + closer * depth
    text = f"[{json.dumps(before)}, {deep}, {json.dumps(after)}]"
    _, elements = iter_json_elements(text, "doc", max_bytes=10**9)
    a, b, c = elements
    assert (a.value, c.value) == (before, after)
    if depth == 3:
        assert b.error is None and json.dumps(b.value) == json.dumps(json.loads(deep))
    else:
        assert b.value is None and b.error and "nested too deeply" in b.error


@FAST
@given(st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=4))
def test_repeated_keys_are_all_seen(doc: dict) -> None:
    key = next(iter(doc))
    body = ", ".join(f"{json.dumps(k)}: {v}" for k, v in doc.items())
    text = "{" + body + f", {json.dumps(key)}: 0" + "}"
    _, elements = iter_json_elements(text, "doc", max_bytes=10**9)
    assert [e.key for e in elements].count(key) == 2


# -- the encoder spec parser ----------------------------------------------------------------

leaf_encoders = st.one_of(
    st.just(MinimalGridEncoder()),
    st.integers(1, 10).map(RepeatNumberEncoder),
    st.sampled_from(["|", ", ", " ", "->"]).map(GridWithSeparationEncoder),
)


def _wrap(inner: st.SearchStrategy[GridEncoder]) -> st.SearchStrategy[GridEncoder]:
    wrappers = [GridCodeBlockEncoder, GridShapeEncoder, RowNumberEncoder]
    plain = st.tuples(st.sampled_from(wrappers), inner).map(lambda t: t[0](t[1]))
    replaced = inner.filter(lambda e: "ReplaceNumberEncoder" not in e.spec()).map(
        ReplaceNumberEncoder
    )
    return plain | replaced


encoders = st.recursive(leaf_encoders, _wrap, max_leaves=4)


@FAST
@given(encoders)
def test_spec_parses_back_to_the_same_encoder(enc: GridEncoder) -> None:
    assert parse_encoder(enc.spec()) == enc
    spaced = enc.spec().replace("(", " ( ").replace(")", " ) ")
    assert parse_encoder(spaced) == enc


spec_alphabet = st.sampled_from(
    ["GridShapeEncoder", "MinimalGridEncoder", "RepeatNumberEncoder", "n", "=", "(", ")", ",",
     "'|'", '"x"', "3", "-1", "99999999999999999999", " ", "__import__", "'", ".", "\x00"]
)  # fmt: skip


@FAST
@given(st.lists(spec_alphabet, max_size=25).map("".join) | st.text(max_size=40))
def test_any_spec_gives_an_encoder_or_an_encoder_spec_error(spec: str) -> None:
    try:
        enc = parse_encoder(spec)
    except EncoderSpecError:
        return
    assert isinstance(enc, GridEncoder) and parse_encoder(enc.spec()) == enc


@pytest.mark.parametrize("depth", [17, 400, 5000])
def test_deeply_nested_spec_is_an_encoder_spec_error(depth: int) -> None:
    spec = "RowNumberEncoder(" * depth + "MinimalGridEncoder()" + ")" * depth
    with pytest.raises(EncoderSpecError):
        parse_encoder(spec)


# -- the answer parser ------------------------------------------------------------------------


@FAST
@given(encoders, grids(), st.text(max_size=20), st.sampled_from(END_MARKERS))
def test_an_encoded_grid_parses_back_whatever_follows_the_end_marker(
    enc: GridEncoder, grid: tuple, tail: str, marker: str
) -> None:
    parsed = parse_answer(enc.to_text(grid) + marker + tail, enc)
    assert parsed.ok and parsed.grid == grid


@FAST
@given(encoders, st.text(max_size=80) | st.binary(max_size=10) | st.none())
def test_parse_answer_never_raises(enc: GridEncoder, text: object) -> None:
    parsed = parse_answer(text, enc)  # type: ignore[arg-type]
    assert parsed.ok != (parsed.error is not None)
    if parsed.ok:
        assert parsed.grid and all(0 <= c <= 9 for row in parsed.grid for c in row)


# -- safetensors headers, manifests and markers (arcx_store's readers) ---------------------------


@st.composite
def safetensors_bytes(draw: st.DrawFn) -> bytes:
    header = draw(
        st.dictionaries(st.text(max_size=5), json_values, max_size=3)
        | st.just({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
        | json_values
    )
    blob = json.dumps(header).encode()
    length = draw(st.sampled_from([len(blob), 0, 2**63 - 1, 2**64 - 1, len(blob) + 1, 100_000_001]))
    return length.to_bytes(8, "little") + blob + draw(st.binary(max_size=16))


@FAST
@given(safetensors_bytes() | st.binary(max_size=40))
def test_safetensors_header_reader_is_bounded_and_typed(data: bytes) -> None:
    try:
        header, start = read_header(data)
    except HeaderError:
        return
    assert isinstance(header, dict) and 8 <= start <= len(data)


def _marker(unit: int) -> dict:
    part = FileInfo(f"units/{unit:06d}/part-00000.safetensors", 10, "0" * 64)
    raw = build_marker(
        unit, parts=[part], predictions=None, num_tasks=1, num_sequences=1, num_tokens=3, skipped=[]
    )
    return json.loads(raw)


damage = st.sampled_from(["drop", "retype", "list", "null"])


@FAST
@given(st.integers(0, 5), st.sampled_from(["unit", "parts", "tasks", "formatVersion", "skipped"]),
       damage, json_values)  # fmt: skip
def test_a_damaged_marker_is_a_store_format_error(
    unit: int, field: str, how: str, value: object
) -> None:
    marker = _marker(unit)
    if how == "drop":
        marker.pop(field, None)
    elif how == "retype":
        marker[field] = value
    elif how == "list":
        marker = [marker]  # type: ignore[assignment]
    else:
        marker[field] = None
    try:
        parsed = parse_marker(json.dumps(marker).encode(), "m", unit)
    except StoreFormatError:
        return
    for info in marker_files(parsed):
        assert not info.key.startswith("/") and ".." not in info.key.split("/")


@FAST
@given(st.text(max_size=30), st.integers(0, 3))
def test_marker_part_keys_cannot_leave_the_store(key: str, unit: int) -> None:
    marker = _marker(unit)
    marker["parts"][0]["key"] = key
    try:
        parse_marker(json.dumps(marker).encode(), "m", unit)
    except StoreFormatError:
        return
    assert key == f"units/{unit:06d}/part-00000.safetensors" or (
        key.startswith(f"units/{unit:06d}/part-") and ".." not in key
    )


@FAST
@given(st.binary(max_size=60) | json_values.map(lambda v: json.dumps(v).encode()))
def test_marker_and_manifest_readers_take_any_bytes(data: bytes) -> None:
    for parse in (lambda d: parse_marker(d, "m", 0), lambda d: parse_manifest(d, "store")):
        with contextlib.suppress(StoreFormatError):
            assert isinstance(parse(data), dict)


def test_non_utf8_and_non_object_manifests_say_so() -> None:
    with pytest.raises(StoreFormatError, match="not UTF-8"):
        parse_manifest(b'{"formatVersion": 2, "x": "\xff"}', "s")
    with pytest.raises(StoreFormatError, match="not an object"):
        parse_manifest(b"[1, 2]", "s")
    with pytest.raises(StoreFormatError, match="no unit plan"):
        parse_manifest(b'{"formatVersion": 2}', "s")
    with pytest.raises(StoreFormatError, match="nested too deeply"):
        parse_manifest(b"[" * 100_000, "s")
