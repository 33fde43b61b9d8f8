"""Reading the store's small JSON files (manifest, markers) without trusting their bytes."""

from __future__ import annotations

import json
from typing import Any

from arcx_store.errors import StoreFormatError

# A manifest or marker is a few KiB; anything far larger is not one of ours.
MAX_JSON_BYTES = 64 * 1024 * 1024


def parse_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` as a JSON object; StoreFormatError (naming ``what``) for anything else."""
    if len(data) > MAX_JSON_BYTES:
        raise StoreFormatError(f"{what} is {len(data)} bytes, more than any arcx file holds")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise StoreFormatError(f"{what} is not UTF-8 text (byte {err.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise StoreFormatError(f"{what} is not valid JSON: {err}") from None
    except RecursionError:
        raise StoreFormatError(f"{what} is not valid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise StoreFormatError(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def encode(value: dict[str, Any]) -> bytes:
    """Canonical bytes: sorted keys, two-space indent, a final newline (no clocks inside)."""
    return (json.dumps(value, sort_keys=True, indent=2) + "\n").encode()
