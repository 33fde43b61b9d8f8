"""The one safetensors header reader: bounded, so a hostile length field costs nothing.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON,
then raw data. The length is checked against the file's size and MAX_HEADER_BYTES before
anything is read, and the JSON must be an object of tensor entries.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

# safetensors' own reader refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100_000_000
LENGTH_BYTES = 8


class HeaderError(ValueError):
    """Not a safetensors file (or a hostile one); the message says what is wrong."""


def header_length(prefix: bytes, total_size: int) -> int:
    """The JSON header's length from the first 8 bytes; refused when it cannot be right."""
    if len(prefix) < LENGTH_BYTES or total_size < LENGTH_BYTES:
        raise HeaderError("not a safetensors file: shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", prefix[:LENGTH_BYTES])
    if n > MAX_HEADER_BYTES:
        raise HeaderError(
            f"not a safetensors file: header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit"
        )
    if n > total_size - LENGTH_BYTES:
        raise HeaderError(
            f"not a safetensors file: header length {n} runs past the end of the "
            f"{total_size}-byte file"
        )
    return n


def parse_header_json(raw: bytes | memoryview) -> dict[str, Any]:
    """The header JSON, checked: an object whose entries have dtype, shape and data_offsets."""
    try:
        header = json.loads(bytes(raw))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise HeaderError(f"not a safetensors file: header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise HeaderError("not a safetensors file: header is not a JSON object")
    for name, info in header.items():
        if name == "__metadata__":
            if info is not None and not (
                isinstance(info, dict) and all(isinstance(v, str) for v in info.values())
            ):
                raise HeaderError("safetensors __metadata__ must map strings to strings")
            continue
        if not (
            isinstance(info, dict)
            and isinstance(info.get("dtype"), str)
            and _ints(info.get("shape"))
            and _ints(info.get("data_offsets"))
            and len(info["data_offsets"]) == 2
            and 0 <= info["data_offsets"][0] <= info["data_offsets"][1]
        ):
            raise HeaderError(
                f"safetensors entry {name!r} needs dtype, shape and [begin, end] data_offsets"
            )
    return header


def _ints(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value
    )


def read_header(data: bytes | memoryview) -> tuple[dict[str, Any], int]:
    """(header, offset where the data starts) of a safetensors file held in memory."""
    n = header_length(bytes(data[:LENGTH_BYTES]), len(data))
    return parse_header_json(data[LENGTH_BYTES : LENGTH_BYTES + n]), LENGTH_BYTES + n


def read_header_file(f: BinaryIO, total_size: int) -> tuple[dict[str, Any], int]:
    """The same for an open file, reading only the header's bytes."""
    n = header_length(f.read(LENGTH_BYTES), total_size)
    raw = f.read(n)
    if len(raw) != n:
        raise HeaderError("not a safetensors file: truncated header")
    return parse_header_json(raw), LENGTH_BYTES + n
