"""A JSON document's top-level elements, each decoded on its own.

``json.loads`` of a whole ``.json`` source fails as one: an element nested deeper than the
parser's recursion limit raises RecursionError for the file, and duplicate object keys are
silently resolved to the last. Here the top-level list or object is walked by hand and each
element goes to the C decoder alone, so a too-deep or over-long element is that element's
error, and every occurrence of a repeated key is seen. Pure functions over a ``str``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class InvalidJSON(ValueError):
    """The document is not JSON; the message names the place (line, column)."""


def too_large(size: int, limit: int) -> str:
    return f"row is {size} bytes, over the {limit}-byte limit per row"


_WS = re.compile(r"[ \t\n\r]*")
_BRACKET_OR_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Element:
    key: str | None  # the key in a top-level object; None in a top-level list
    value: Any
    error: str | None


def iter_json_elements(text: str, where: str, *, max_bytes: int) -> tuple[str, Iterator[Element]]:
    """The top-level JSON value's kind ("list", "object" or "scalar") and its elements.

    Each element is decoded on its own, so one nested too deeply or longer than
    ``max_bytes`` characters is reported as that element's error and the others are still
    read; duplicate object keys are all yielded (``json.loads`` keeps the last silently).
    Invalid JSON raises InvalidJSON, for a list or object as its elements are reached.
    """
    pos = _WS.match(text).end()
    opener = text[pos : pos + 1]
    if opener not in ("[", "{"):
        _, end = _decode_at(text, pos, where)
        _expect_end(text, end, where)
        return "scalar", iter(())
    return ("list" if opener == "[" else "object"), _elements(text, pos, where, max_bytes)


def _elements(text: str, pos: int, where: str, max_bytes: int) -> Iterator[Element]:
    opener = text[pos]
    closer = "]" if opener == "[" else "}"
    pos = _WS.match(text, pos + 1).end()
    if text[pos : pos + 1] == closer:
        _expect_end(text, pos + 1, where)
        return
    while True:
        key = None
        if opener == "{":
            key, pos = _decode_at(text, pos, where)
            if not isinstance(key, str):
                raise _not_json(where, text, pos, "an object key must be a string")
            pos = _WS.match(text, pos).end()
            if text[pos : pos + 1] != ":":
                raise _not_json(where, text, pos, "expected ':'")
            pos = _WS.match(text, pos + 1).end()
        start = pos
        try:
            value, pos = _decode_at(text, pos, where)
            error = None if pos - start <= max_bytes else too_large(pos - start, max_bytes)
        except RecursionError:
            pos = _skip_nested(text, start, where)
            value, error = None, "nested too deeply to parse (not an ARC record)"
        yield Element(key, None if error else value, error)
        pos = _WS.match(text, pos).end()
        sep = text[pos : pos + 1]
        if sep == ",":
            pos = _WS.match(text, pos + 1).end()
            continue
        if sep == closer:
            _expect_end(text, pos + 1, where)
            return
        raise _not_json(where, text, pos, f"expected ',' or {closer!r}")


def _decode_at(text: str, pos: int, where: str) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as err:
        raise InvalidJSON(f"{where} is not valid JSON: {err}") from None


def _skip_nested(text: str, pos: int, where: str) -> int:
    """The end of the array or object starting at ``pos``, found without recursion."""
    depth = 0
    for m in _BRACKET_OR_STRING.finditer(text, pos):
        tok = m.group()
        if tok in ("[", "{"):
            depth += 1
        elif tok in ("]", "}"):
            depth -= 1
            if depth == 0:
                return m.end()
    raise _not_json(where, text, len(text), "an array or object is never closed")


def _expect_end(text: str, pos: int, where: str) -> None:
    pos = _WS.match(text, pos).end()
    if pos != len(text):
        raise _not_json(where, text, pos, "extra data after the top-level value")


def _not_json(where: str, text: str, pos: int, why: str) -> InvalidJSON:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return InvalidJSON(f"{where} is not valid JSON: {why}: line {line} column {col} (char {pos})")
