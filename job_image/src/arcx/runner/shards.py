"""Activation part files: safetensors bytes, written and read deterministically.

A part holds, for the sequences one host kept in one unit, in the unit's order:
``"<site>.<layer>"`` [n_tokens, d_model] in the extraction dtype, ``token_ids`` [n_tokens]
int32 and ``offsets`` [n_seq + 1] int64 (sequence i is rows offsets[i]:offsets[i+1]).
Metadata is string -> string (safetensors' rule), JSON-encoded where structured, written
in sorted key order; no timestamps, so the same rows give the same bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from arcx.runner import layout
from arcx.safetensors_dtypes import BY_NAME, NAME_OF


def tensor_name(site: str, layer: int) -> str:
    return f"{site}.{layer}"


def encode_part(tensors: dict[str, np.ndarray], metadata: dict[str, Any]) -> bytes:
    """safetensors bytes with a canonical header (sorted keys, tensors in name order).

    Serialised here rather than by ``safetensors.numpy.save``, whose metadata order follows
    a hash map and so changes from process to process; the official reader reads these
    files (tests/runner/test_shards.py checks it).
    """
    meta = {"format": layout.SHARD_FORMAT}
    for k, v in metadata.items():
        meta[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))
    header: dict[str, Any] = {"__metadata__": dict(sorted(meta.items()))}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype not in NAME_OF:
            raise ValueError(f"tensor {name!r} has unsupported dtype {arr.dtype}")
        raw = arr.tobytes()
        header[name] = {
            "dtype": NAME_OF[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    return b"".join([struct.pack("<Q", len(text)), text, *blobs])


def read_header(data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise ValueError("not a safetensors file: shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("not a safetensors file: header length past the end of the file")
    return json.loads(data[8 : 8 + n])


def decode_part(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a part into numpy arrays (bf16 through ml_dtypes) and its metadata."""
    header = read_header(data)
    (n,) = struct.unpack("<Q", data[:8])
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        dtype = BY_NAME[info["dtype"]]
        out[name] = np.frombuffer(data[base + a : base + b], dtype=dtype).reshape(info["shape"])
    return out, meta
