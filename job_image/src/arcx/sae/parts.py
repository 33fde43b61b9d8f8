"""Find the committed parts of an activation store and open one site/layer of a part.

Only units with a ``COMMITTED`` marker are read, and only the parts their marker names: a
part written by an attempt that never committed is invisible here, as it is to the runner.
A local part is memory-mapped (only the pages of the rows asked for are read); a part on
another backend is read whole, one part at a time per open reader.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arcx.runner import layout, shards
from arcx.runner.commit import read_marker
from arcx.runner.manifest import read_manifest
from arcx.safetensors_dtypes import BY_NAME
from arcx.storage import NotFound, Storage, StorageError
from arcx.storage.local import LocalStorage


class SaeDataError(Exception):
    """The store cannot serve what was asked (not a store, unknown site or layer, ...)."""


class CorruptPart(SaeDataError):
    """A committed part does not match its marker (size or sha256) or cannot be decoded."""


@dataclass(frozen=True)
class PartRef:
    """One part file named by a commit marker."""

    unit: int
    key: str  # relative to the store root
    size: int
    sha256: str


@dataclass(frozen=True)
class StoreInfo:
    uri: str
    manifest: dict[str, Any]
    parts: tuple[PartRef, ...]  # committed parts, sorted by (unit, key)
    units_committed: int
    units_total: int

    @property
    def d_model(self) -> int:
        return int(self.manifest["dModel"])

    @property
    def sites(self) -> list[str]:
        return list(self.manifest.get("sites", []))

    @property
    def layers(self) -> list[int]:
        return [int(x) for x in self.manifest.get("layers", [])]

    def check_site_layer(self, site: str, layer: int) -> str:
        """The tensor name for ``site`` at ``layer``; a clear error if the store lacks it."""
        if site not in self.sites:
            raise SaeDataError(
                f"site {site!r} is not in the store {self.uri}: it recorded sites {self.sites}"
            )
        if layer not in self.layers:
            raise SaeDataError(
                f"layer {layer} is not in the store {self.uri}: it recorded layers {self.layers}"
            )
        return shards.tensor_name(site, layer)


def read_store(storage: Storage) -> StoreInfo:
    """The manifest and every committed part; units without a marker are left out."""
    try:
        manifest = read_manifest(storage)
    except NotFound:
        raise SaeDataError(
            f"{storage.uri}/{layout.MANIFEST} is missing: {storage.uri} is not an arcx "
            "activation store (point at the job's output.uri)"
        ) from None
    except Exception as err:  # StoreMismatch: bad JSON or another format version
        raise SaeDataError(str(err)) from None
    units_total = len(manifest.get("plan", {}).get("units", []))
    committed = sorted(
        {u for k in storage.list(layout.UNITS_DIR) if (u := layout.unit_of_marker(k)) is not None}
    )
    parts: list[PartRef] = []
    for u in committed:
        try:
            marker = read_marker(storage, u)
        except StorageError as err:
            raise SaeDataError(f"unit {u}: {err}") from None
        if marker is None:  # deleted between list and read
            continue
        for p in marker["parts"]:
            parts.append(PartRef(u, str(p["key"]), int(p["size"]), str(p["sha256"])))
    parts.sort(key=lambda p: (p.unit, p.key))
    return StoreInfo(storage.uri, manifest, tuple(parts), len(committed), units_total)


@dataclass
class OpenPart:
    """One site/layer of one part: activations [n_tokens, d_model] (possibly memory-mapped)."""

    ref: PartRef
    activations: np.ndarray
    token_ids: np.ndarray  # int32 [n_tokens]


def _where(storage: Storage, ref: PartRef) -> str:
    return f"unit {ref.unit} part {storage.uri}/{ref.key}"


def _load(storage: Storage, ref: PartRef, verify: bool) -> tuple[Any, str | None]:
    """The part's bytes (an mmap for a local store) and, when asked, their sha256.

    A local file is hashed through read(2) rather than through the map: reading a whole
    part page by page through a fresh map costs a page fault per 4 KiB.
    """
    if isinstance(storage, LocalStorage):
        path = Path(storage.root) / ref.key
        try:
            with path.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest() if verify else None
                if path.stat().st_size == 0:
                    return b"", digest
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), digest
        except FileNotFoundError:
            pass
    else:
        try:
            data = storage.read_bytes(ref.key)
            return data, hashlib.sha256(data).hexdigest() if verify else None
        except NotFound:
            pass
    raise CorruptPart(
        f"{_where(storage, ref)} is named by its COMMITTED marker but is missing; "
        f"run `arcx verify {storage.uri}`, then delete {layout.marker_key(ref.unit)} and "
        "resume the job to redo the unit"
    )


def open_part(storage: Storage, ref: PartRef, tensor: str, *, verify: bool) -> OpenPart:
    """Open ``tensor`` and ``token_ids`` of a committed part, checking it against its marker."""
    data, digest = _load(storage, ref, verify)
    fix = (
        f"the file changed after it was committed. Run `arcx verify {storage.uri}`; to redo the "
        f"unit delete {layout.marker_key(ref.unit)} and resume the job (or read it anyway with "
        "verify_checksums=False / --no-verify)"
    )
    if len(data) != ref.size:
        raise CorruptPart(
            f"{_where(storage, ref)}: size {len(data)} bytes, COMMITTED says {ref.size}: {fix}"
        )
    if digest is not None and digest != ref.sha256:
        raise CorruptPart(
            f"{_where(storage, ref)}: sha256 {digest[:16]}..., COMMITTED says "
            f"{ref.sha256[:16]}... (corrupted): {fix}"
        )
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = shards.read_header(data[: 8 + n])
        header.pop("__metadata__", None)
        view = memoryview(data)
        arrays = {}
        for name in (tensor, "token_ids"):
            if name not in header:
                raise CorruptPart(
                    f"{_where(storage, ref)} has no tensor {name!r} (it has {sorted(header)})"
                )
            info = header[name]
            a, b = info["data_offsets"]
            dtype = BY_NAME[info["dtype"]]
            arrays[name] = np.frombuffer(view[8 + n + a : 8 + n + b], dtype=dtype).reshape(
                info["shape"]
            )
    except CorruptPart:
        raise
    except (ValueError, KeyError, struct.error, json.JSONDecodeError) as err:
        raise CorruptPart(f"{_where(storage, ref)} is not a readable part: {err}") from None
    acts, tokens = arrays[tensor], arrays["token_ids"]
    if acts.ndim != 2 or tokens.ndim != 1 or acts.shape[0] != tokens.shape[0]:
        raise CorruptPart(
            f"{_where(storage, ref)}: {tensor} has shape {list(acts.shape)} but token_ids has "
            f"shape {list(tokens.shape)}; expected [n_tokens, d_model] and [n_tokens]"
        )
    return OpenPart(ref, acts, tokens.astype(np.int32, copy=False))
