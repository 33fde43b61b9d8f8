"""``arcx.open_store(uri)``: a read-only view of an activation store for notebooks.

Sequences are found through the committed parts the store's markers name (the same
reader as the SAE loader, :func:`arcx.sae.parts.read_store`), and each part is decoded by
the one part decoder (``arcx_store.parts``). A local part is memory-mapped, so only the
rows of the sequences asked for are paged in; a gs:// part is read by byte ranges
(``Storage.read_range``): its header and its small per-token tensors (token ids,
annotations, offsets) once, then only the rows of each activation asked for. The last
few parts are kept. Sizes are checked against the marker on every open; sha256 only with
``verify=True``, which reads a gs:// part whole (``arcx verify`` checks everything).

Example (docs/sae.md)::

    import arcx
    store = arcx.open_store("/data/runs/r1")
    store.sites, store.layers, len(store.tasks)
    seq = store.sequence(store.tasks[0])
    seq.token_ids, seq.tokens[:5], seq["resid_post.3"].shape   # (n_tokens, d_model)
    seq["resid_post.3"][seq.select("role=answer cells")]       # only the answer's cells
    for seq in store.sequences(task_ids=store.tasks[:10], names=["resid_post.3"]): ...
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from arcx_store import layout
from arcx_store.backends.local import LocalStorage
from arcx_store.header import HeaderError
from arcx_store.parts import RangedPart, tensor_views

from arcx.sae.parts import CorruptPart, PartRef, SaeDataError, read_store

PARTS_KEPT = 4


@dataclass(frozen=True)
class SequenceRef:
    task_id: str
    test_index: int
    part: PartRef
    start: int  # first row of the sequence in the part's tensors
    stop: int


@dataclass
class StoredSequence:
    """One sequence: its kept token ids and strings, and each requested ``site.layer``."""

    task_id: str
    test_index: int
    unit: int
    token_ids: np.ndarray  # int32 [n_tokens]
    activations: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [n, d_model]
    tokens: list[str] | None = None  # the tokenizer's strings, when it can be loaded
    # "role", "example", "row", "col", "colour", "cells" -> [n] int32 (store format 3)
    annotations: dict[str, np.ndarray] | None = None

    def select(self, where: Any) -> np.ndarray:
        """The rows an annotation filter keeps: ``seq["resid_post.3"][seq.select("role=answer
        cells")]`` (a string or an :class:`arcx.prompts.annotations.TokenFilter`)."""
        from arcx.prompts.annotations import TokenFilter

        if self.annotations is None:
            raise SaeDataError(
                f"task {self.task_id}: its part has no token annotations (written before "
                "store format 3)"
            )
        f = TokenFilter.parse(where) if isinstance(where, str) else where
        return np.flatnonzero(f.mask(self.annotations))

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.activations:
            raise KeyError(
                f"{name!r} was not requested or recorded; have {sorted(self.activations)}"
            )
        return self.activations[name]

    def __len__(self) -> int:
        return len(self.token_ids)


class _WholePart:
    """A part held whole: memory-mapped locally, or fetched whole to check its sha256."""

    def __init__(self, data: Any) -> None:
        self.tensors, self.metadata = tensor_views(data)
        self.names = set(self.tensors)

    def rows(self, name: str, a: int | None = None, b: int | None = None) -> np.ndarray:
        return self.tensors[name][a:b]


class _RangedPart:
    """A part read by ranges; its small per-token and per-sequence tensors are read whole
    once (4 bytes a token each), activations only for the rows asked for."""

    def __init__(self, part: RangedPart) -> None:
        self.part, self.metadata, self.names = part, part.metadata, set(part.names)
        self._small: dict[str, np.ndarray] = {}

    def rows(self, name: str, a: int | None = None, b: int | None = None) -> np.ndarray:
        if name == layout.OFFSETS or name == layout.TOKEN_IDS or name.startswith(layout.ANN_PREFIX):
            if name not in self._small:
                self._small[name] = self.part.read(name)
            return self._small[name][a:b]
        return self.part.read(name, a, b)


_Part = _WholePart | _RangedPart


class StoreView:
    """Read-only: sites, layers, tasks and metadata of a store, and its sequences."""

    def __init__(self, uri: str, *, verify: bool = False, tokenizer: Any = None) -> None:
        from arcx_store.backends import open_storage

        self.storage = open_storage(uri)
        self.info = read_store(self.storage)
        self.verify = verify
        self._tokenizer = tokenizer
        self._parts: OrderedDict[str, _Part] = OrderedDict()
        self._index = self._build_index()

    # what the store is ---------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self.info.uri

    @property
    def metadata(self) -> dict[str, Any]:
        """The manifest: config, model, dataset, plan, format version."""
        return json.loads(json.dumps(self.info.manifest))

    @property
    def sites(self) -> list[str]:
        return self.info.sites

    @property
    def layers(self) -> list[int]:
        return self.info.layers

    @property
    def names(self) -> list[str]:
        """Tensor names ``site.layer`` of every recorded site at every recorded layer."""
        return [layout.tensor_name(s, layer) for s in self.sites for layer in self.layers]

    @property
    def d_model(self) -> int:
        return self.info.d_model

    @cached_property
    def tasks(self) -> list[str]:
        """Task ids in store order, each once."""
        return list(dict.fromkeys(r.task_id for r in self._index))

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return (
            f"StoreView({self.uri!r}: {len(self.tasks)} tasks, {len(self)} sequences, "
            f"sites {self.sites}, layers {self.layers}, d_model {self.d_model})"
        )

    # sequences -----------------------------------------------------------------------

    def sequence(
        self, task_id: str, test_index: int = 0, *, names: Iterable[str] | None = None
    ) -> StoredSequence:
        for ref in self._index:
            if ref.task_id == task_id and ref.test_index == test_index:
                return self._read(ref, names)
        known = "" if not self._index else f" (e.g. {self._index[0].task_id!r})"
        raise KeyError(f"task {task_id!r} test {test_index} is not in {self.uri}{known}")

    def sequences(
        self, *, task_ids: Iterable[str] | None = None, names: Iterable[str] | None = None
    ) -> Iterator[StoredSequence]:
        """Every sequence in store order, or only those of ``task_ids``."""
        wanted = None if task_ids is None else set(task_ids)
        want_names = None if names is None else list(names)
        for ref in self._index:
            if wanted is None or ref.task_id in wanted:
                yield self._read(ref, want_names)

    def __iter__(self) -> Iterator[StoredSequence]:
        return self.sequences()

    @property
    def tokenizer(self) -> Any:
        """The tokenizer at the manifest's model source when it is a local folder, else None."""
        if self._tokenizer is None:
            source = str(self.info.manifest.get("model", {}).get("source", ""))
            path = Path(source.removeprefix("file://")).expanduser()
            if source and (path / "tokenizer.json").exists():
                from tokenizers import Tokenizer

                self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        return self._tokenizer

    # reading -------------------------------------------------------------------------

    def _build_index(self) -> list[SequenceRef]:
        out: list[SequenceRef] = []
        for ref in self.info.parts:
            part = self._open(ref)
            try:
                offsets = part.rows(layout.OFFSETS)
            except (HeaderError, KeyError) as err:
                raise CorruptPart(f"{self.uri}/{ref.key} is not a readable part: {err}") from None
            seqs = json.loads(part.metadata.get("sequences", "[]"))
            if len(offsets) != len(seqs) + 1:
                raise CorruptPart(
                    f"{self.uri}/{ref.key}: {len(seqs)} sequences but {len(offsets)} offsets"
                )
            for (task_id, test_index), a, b in zip(seqs, offsets[:-1], offsets[1:], strict=True):
                out.append(SequenceRef(str(task_id), int(test_index), ref, int(a), int(b)))
        return out

    def _open(self, ref: PartRef) -> _Part:
        if ref.key in self._parts:
            self._parts.move_to_end(ref.key)
            return self._parts[ref.key]
        whole = self.verify or isinstance(self.storage, LocalStorage)
        size = len(data := self.storage.read_mapped(ref.key)) if whole else None
        if size is None:
            size = self.storage.size(ref.key)  # one metadata request, not the part
        if size != ref.size:
            raise CorruptPart(
                f"{self.uri}/{ref.key}: {size} bytes, its {layout.MARKER_NAME} marker says "
                f"{ref.size}; run `arcx verify {self.uri}`"
            )
        if self.verify and hashlib.sha256(data).hexdigest() != ref.sha256:
            raise CorruptPart(
                f"{self.uri}/{ref.key}: sha256 does not match its {layout.MARKER_NAME} marker; "
                f"run `arcx verify {self.uri}`"
            )
        try:
            part: _Part = (
                _WholePart(data) if whole else _RangedPart(RangedPart(self.storage, ref.key, size))
            )
        except (ValueError, KeyError) as err:
            raise CorruptPart(f"{self.uri}/{ref.key} is not a readable part: {err}") from None
        self._parts[ref.key] = part
        while len(self._parts) > PARTS_KEPT:
            self._parts.popitem(last=False)
        return part

    def _read(self, ref: SequenceRef, names: Iterable[str] | None) -> StoredSequence:
        part = self._open(ref.part)
        want = self.names if names is None else list(names)
        for name in want:
            if name not in part.names:
                raise SaeDataError(f"{name!r} is not in {self.uri}: it recorded {self.names}")
        a, b = ref.start, ref.stop
        try:
            ids = np.asarray(part.rows(layout.TOKEN_IDS, a, b), dtype=np.int32)
            activations = {n: part.rows(n, a, b) for n in want}
            annotations = (
                {
                    n.removeprefix(layout.ANN_PREFIX): part.rows(n, a, b)
                    for n in layout.ANNOTATION_TENSORS
                }
                if layout.ANN_ROLE in part.names
                else None
            )
        except HeaderError as err:
            raise CorruptPart(f"{self.uri}/{ref.part.key} is not a readable part: {err}") from None
        tok = self.tokenizer
        return StoredSequence(
            task_id=ref.task_id,
            test_index=ref.test_index,
            unit=ref.part.unit,
            token_ids=ids,
            activations=activations,
            tokens=None if tok is None else [tok.id_to_token(int(i)) for i in ids],
            annotations=annotations,
        )


def open_store(uri: str, *, verify: bool = False, tokenizer: Any = None) -> StoreView:
    """A read-only view of the activation store at ``uri`` (a path or gs://bucket/prefix)."""
    return StoreView(uri, verify=verify, tokenizer=tokenizer)
