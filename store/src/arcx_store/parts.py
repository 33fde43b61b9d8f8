"""Activation part files: assembled, encoded and decoded here and nowhere else.

A part holds, for the sequences one host kept in one unit, in the unit's order:
``"<site>.<layer>"`` [n_tokens, d_model] in the extraction dtype, ``token_ids`` [n_tokens]
int32 and ``offsets`` [n_seq + 1] int64 (sequence i is rows offsets[i]:offsets[i+1]);
from format 3 the token annotations ``ann.*`` [n_tokens] int32, each sequence's
augmentation ``seq.dihedral`` [n_seq] and ``seq.colour_perm`` [n_seq, 10] int32, and the
runner's ``stats.*`` (arcx_store.stats).
Metadata is string -> string (safetensors' rule), JSON-encoded where structured, written
in sorted key order; no timestamps, so the same rows give the same bytes.
Needs the ``tensors`` extra.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arcx_store import layout
from arcx_store.dtypes import BY_NAME, NAME_OF
from arcx_store.header import (
    LENGTH_BYTES,
    HeaderError,
    header_length,
    parse_header_json,
    read_header,
)

# ann.* per token and seq.* per sequence; token_ids per token, offsets per sequence + 1.
ANNOTATION_DTYPE = np.int32
TOKEN_ID_DTYPE = np.int32
OFFSET_DTYPE = np.int64
SEQ_VALUES = 1 + 10  # seq.dihedral + seq.colour_perm per sequence


def token_bytes() -> int:
    """Bytes a part stores per kept token besides its activations (ids and annotations)."""
    return (
        np.dtype(TOKEN_ID_DTYPE).itemsize
        + len(layout.ANNOTATION_TENSORS) * np.dtype(ANNOTATION_DTYPE).itemsize
    )


def sequence_bytes() -> int:
    """Bytes a part stores per sequence (its offset and its augmentation)."""
    return np.dtype(OFFSET_DTYPE).itemsize + SEQ_VALUES * np.dtype(ANNOTATION_DTYPE).itemsize


@dataclass(frozen=True)
class SequenceRows:
    """The rows one sequence keeps in a part: its token ids and each tensor's activations."""

    task_id: str
    test_index: int
    token_ids: np.ndarray  # [n] int
    activations: Mapping[str, np.ndarray]  # tensor name -> [n, d_model]
    # annotation field ("role", "example", ...: layout.ANNOTATION_TENSORS without "ann.")
    # -> [n] int; None: not annotated (every entry -1)
    annotations: Mapping[str, np.ndarray] | None = None
    dihedral: int = 0
    colour_perm: Sequence[int] = tuple(range(10))


def assemble_part(
    rows: Sequence[SequenceRows],
    *,
    tensor_names: Sequence[str],
    d_model: int,
    dtype: np.dtype,
    metadata: Mapping[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tensors and metadata of one part (pure): rows concatenated in the given order."""
    tensors: dict[str, np.ndarray] = {}
    for name in tensor_names:
        pieces = [r.activations[name] for r in rows]
        tensors[name] = np.concatenate(pieces) if pieces else np.zeros((0, d_model), dtype)
    tensors[layout.TOKEN_IDS] = (
        np.concatenate([r.token_ids for r in rows]).astype(TOKEN_ID_DTYPE)
        if rows
        else np.zeros(0, TOKEN_ID_DTYPE)
    )
    counts = [len(r.token_ids) for r in rows]
    tensors[layout.OFFSETS] = np.concatenate([[0], np.cumsum(counts)]).astype(OFFSET_DTYPE)
    for name in layout.ANNOTATION_TENSORS:
        field = name.removeprefix(layout.ANN_PREFIX)
        pieces = [
            np.full(len(r.token_ids), -1) if r.annotations is None else r.annotations[field]
            for r in rows
        ]
        tensors[name] = (
            np.concatenate(pieces).astype(ANNOTATION_DTYPE)
            if rows
            else np.zeros(0, ANNOTATION_DTYPE)
        )
    tensors[layout.SEQ_DIHEDRAL] = np.asarray([r.dihedral for r in rows], ANNOTATION_DTYPE)
    tensors[layout.SEQ_COLOUR_PERM] = np.asarray(
        [list(r.colour_perm) for r in rows], ANNOTATION_DTYPE
    ).reshape(len(rows), 10)
    meta = dict(metadata)
    meta["sequences"] = [[r.task_id, r.test_index] for r in rows]
    meta["task_ids"] = sorted({r.task_id for r in rows})
    return tensors, meta


def encode_part(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, Any]) -> bytes:
    """safetensors bytes with a canonical header (sorted keys, tensors in name order).

    Serialised here rather than by ``safetensors.numpy.save``, whose metadata order follows
    a hash map and so changes from process to process; the official reader reads these
    files (tests/runner/test_store_format.py checks it).
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


def tensor_views(
    data: Any, names: Sequence[str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays over ``data`` (bytes or an mmap; no copy) for ``names`` (all when None), and
    the metadata. Raises HeaderError for anything that is not a readable part."""
    header, base = read_header(memoryview(data))
    meta = header.pop("__metadata__", None) or {}
    view = memoryview(data)
    out: dict[str, np.ndarray] = {}
    for name in header if names is None else names:
        dtype, a, b, shape = _entry(header, name, base, len(view))
        out[name] = np.frombuffer(view[base + a : base + b], dtype=dtype).reshape(shape)
    return out, meta


def _entry(
    header: Mapping[str, Any], name: str, base: int, total: int
) -> tuple[np.dtype, int, int, list[int]]:
    """(dtype, begin, end, shape) of one tensor, checked against its shape and the size."""
    if name not in header:
        raise HeaderError(f"no tensor {name!r} (the part has {sorted(header)})")
    info = header[name]
    dtype = BY_NAME.get(info["dtype"])
    if dtype is None:
        raise HeaderError(f"tensor {name!r} has unsupported dtype {info['dtype']!r}")
    a, b = info["data_offsets"]
    count = int(np.prod(info["shape"])) if info["shape"] else 1
    if b - a != count * dtype.itemsize or base + b > total:
        raise HeaderError(f"tensor {name!r}: its data_offsets do not match its shape")
    return dtype, a, b, list(info["shape"])


class RangedPart:
    """A part read by byte ranges (``Storage.read_range``): its header once, then only the
    rows asked for, so a gs:// reader fetches one sequence of one tensor, not the part.

    ``size`` is the part's size as its marker records it; every range is checked against
    it, and a short read (an object smaller than the marker says) is a HeaderError.
    """

    def __init__(self, storage: Any, key: str, size: int) -> None:
        self.storage, self.key, self.size = storage, key, size
        n = header_length(storage.read_range(key, 0, LENGTH_BYTES), size)
        raw = storage.read_range(key, LENGTH_BYTES, n)
        if len(raw) != n:
            raise HeaderError("not a safetensors file: truncated header")
        header = parse_header_json(raw)
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self.header: dict[str, Any] = header
        self.base = LENGTH_BYTES + n

    @property
    def names(self) -> list[str]:
        return sorted(self.header)

    def read(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of tensor ``name`` (all of it when both are None), one request."""
        dtype, a, b, shape = _entry(self.header, name, self.base, self.size)
        rows = shape[0] if shape else 1
        lo, hi, _ = slice(start, stop).indices(rows)
        hi = max(lo, hi)
        row_bytes = (b - a) // rows if rows else 0
        length = (hi - lo) * row_bytes
        raw = self.storage.read_range(self.key, self.base + a + lo * row_bytes, length)
        if len(raw) != length:
            raise HeaderError(f"tensor {name!r} runs past the end of the object")
        if not shape:
            return np.frombuffer(raw, dtype=dtype).reshape(shape)
        return np.frombuffer(raw, dtype=dtype).reshape([hi - lo, *shape[1:]])


def decode_part(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a whole part into numpy arrays (bf16 through ml_dtypes) and its metadata."""
    return tensor_views(data)
