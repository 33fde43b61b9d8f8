"""Find the committed parts of an activation store and open one site/layer of a part.

Only units with a ``COMMITTED`` marker are read, and only the parts their marker names: a
part written by an attempt that never committed is invisible here, as it is to the runner.
A local part is memory-mapped (only the pages of the rows asked for are read); a part on
another backend is read whole, one part at a time per open reader. Every read goes through
the storage interface, and markers are parsed by ``arcx_store.markers``, which refuses keys
that leave the store (``../../x``, absolute paths).
"""

from __future__ import annotations

import hashlib
import mmap
from dataclasses import dataclass
from typing import Any

import numpy as np
from arcx_store import layout
from arcx_store.backends.base import Storage
from arcx_store.errors import NotFound, StorageError, StoreFormatError
from arcx_store.header import HeaderError
from arcx_store.manifest import read_manifest, units_total
from arcx_store.markers import parse_marker
from arcx_store.parts import tensor_views
from arcx_store.units import list_store, marked_units


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
        return layout.tensor_name(site, layer)


def read_store(storage: Storage) -> StoreInfo:
    """The manifest and every committed part; units without a marker are left out."""
    try:
        manifest = read_manifest(storage)
    except NotFound:
        raise SaeDataError(
            f"{storage.uri}/{layout.MANIFEST} is missing: {storage.uri} is not an arcx "
            "activation store (point at the job's output.uri)"
        ) from None
    except StoreFormatError as err:  # bad JSON, no plan, another format version
        raise SaeDataError(str(err)) from None
    total = units_total(manifest)
    stats = list_store(storage)
    committed = marked_units(stats)
    parts: list[PartRef] = []
    for u in committed:
        key = layout.marker_key(u)
        try:
            marker = parse_marker(storage.read_bytes(key), f"{storage.uri}/{key}", u)
        except NotFound:  # deleted between list and read
            continue
        except StorageError as err:  # StoreFormatError included
            raise SaeDataError(f"unit {u}: {err}") from None
        for p in marker["parts"]:
            parts.append(PartRef(u, str(p["key"]), int(p["size"]), str(p["sha256"])))
    parts.sort(key=lambda p: (p.unit, p.key))
    return StoreInfo(storage.uri, manifest, tuple(parts), len(committed), total)


@dataclass
class OpenPart:
    """One site/layer of one part: activations [n_tokens, d_model] (possibly memory-mapped)."""

    ref: PartRef
    activations: np.ndarray
    token_ids: np.ndarray  # int32 [n_tokens]
    # "role", "example", ... -> int32 [n_tokens]; None unless asked for (format 3 parts)
    annotations: dict[str, np.ndarray] | None = None


def _where(storage: Storage, ref: PartRef) -> str:
    return f"unit {ref.unit} part {storage.uri}/{ref.key}"


def _load(storage: Storage, ref: PartRef, verify: bool) -> tuple[Any, str | None]:
    """The part's bytes (an mmap for a local store) and, when asked, their sha256."""
    try:
        data = storage.read_mapped(ref.key)
    except NotFound:
        raise CorruptPart(
            f"{_where(storage, ref)} is named by its COMMITTED marker but is missing; "
            f"run `arcx verify {storage.uri}`, then delete {layout.marker_key(ref.unit)} and "
            "resume the job to redo the unit"
        ) from None
    except StorageError as err:
        raise SaeDataError(f"{_where(storage, ref)}: {err}") from None
    if verify and isinstance(data, mmap.mmap):
        # Hashing through a fresh map faults a page at a time; ask for read-ahead instead.
        data.madvise(mmap.MADV_SEQUENTIAL)
    return data, hashlib.sha256(data).hexdigest() if verify else None


def open_part(
    storage: Storage, ref: PartRef, tensor: str, *, verify: bool, annotations: bool = False
) -> OpenPart:
    """Open ``tensor`` and ``token_ids`` (and with ``annotations`` the ``ann.*`` tensors) of
    a committed part, checking it against its marker."""
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
    names = [tensor, layout.TOKEN_IDS]
    try:
        arrays, _ = tensor_views(data, names)
        ann = None
        if annotations:
            views, _ = tensor_views(data, list(layout.ANNOTATION_TENSORS))
            ann = {k.removeprefix(layout.ANN_PREFIX): v for k, v in views.items()}
    except HeaderError as err:
        if annotations and "no tensor 'ann." in str(err):
            raise SaeDataError(
                f"{_where(storage, ref)} has no token annotations (written before store "
                "format 3); read it without an annotation filter"
            ) from None
        raise CorruptPart(f"{_where(storage, ref)} is not a readable part: {err}") from None
    acts, tokens = arrays[tensor], arrays[layout.TOKEN_IDS]
    if acts.ndim != 2 or tokens.ndim != 1 or acts.shape[0] != tokens.shape[0]:
        raise CorruptPart(
            f"{_where(storage, ref)}: {tensor} has shape {list(acts.shape)} but token_ids has "
            f"shape {list(tokens.shape)}; expected [n_tokens, d_model] and [n_tokens]"
        )
    return OpenPart(ref, acts, tokens.astype(np.int32, copy=False), ann)
