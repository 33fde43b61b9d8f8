"""Shuffled token batches from an activation store, for SAE training (numpy, no torch).

How rows are mixed, per epoch (all randomness from ``seed`` and the epoch number):

1. the committed parts (every host's part of every unit) are put in a random order;
2. up to ``open_parts`` of them are open at once, each with a random permutation of its
   kept rows (special tokens dropped), and rows are drawn from them round-robin, a chunk
   from each in turn, into a shuffle buffer of ``shuffle_buffer_tokens`` rows; a finished
   part is replaced by the next one in the order;
3. the buffer is permuted and half of it leaves as batches; the other half stays and mixes
   with the next fill. At the end of the epoch the buffer is drained, so each kept row is
   yielded exactly once per epoch.

So a batch holds tokens from ``open_parts`` different units (plus those carried in the
buffer), scattered over every sequence of those units — never one task's sequence in order
(the flaw of SAELens#612, where rows were whole sequences and the saved dataset was not
shuffled at all). Memory: the buffer, plus one chunk, plus the open parts (memory-mapped
when local, read whole from other backends).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from arcx_store.backends import Storage, open_storage
from arcx_store.header import HeaderError
from arcx_store.parts import tensor_views
from arcx_store.stats import Moments

from arcx.prompts.annotations import TokenFilter
from arcx.sae.parts import OpenPart, PartRef, SaeDataError, StoreInfo, open_part, read_store
from arcx.sae.special_tokens import as_id_array, default_excluded_ids

DEFAULT_BUFFER_TOKENS = 1 << 16
DEFAULT_OPEN_PARTS = 8
NORMALIZATIONS = ("none", "mean_norm")


@dataclass(frozen=True)
class Batch:
    activations: np.ndarray  # [n, d_model], the loader's dtype
    token_ids: np.ndarray  # [n] int32
    units: np.ndarray  # [n] int32: the unit each row came from


class _Cursor:
    """Rows of one open part, in a random order (or in file order when not shuffling)."""

    def __init__(self, part: OpenPart, rows: np.ndarray) -> None:
        self.part = part
        self.rows = rows
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.rows) - self.pos

    def take(self, n: int, dtype: np.dtype, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        idx = self.rows[self.pos : self.pos + n]
        self.pos += len(idx)
        idx = np.sort(idx)  # near-sequential reads; the buffer permutes them anyway
        acts = np.asarray(self.part.activations[idx], dtype=dtype)
        if scale != 1.0:
            acts *= np.asarray(scale, dtype)
        return acts, self.part.token_ids[idx]


class ActivationLoader:
    """Iterate ``[batch_size, d_model]`` batches of one site and layer of a store.

    ``exclude_token_ids``: None (default) takes the special tokens of the tokenizer at the
    manifest's model source when that is a local folder, and otherwise raises asking for
    them; pass ``()`` to keep every token. ``epochs``: a count, or None for an endless
    stream. ``shuffle=False`` reads parts and rows in store order (for baselines and
    order-preserving exports). Iterating yields activation arrays; ``batches()`` yields
    :class:`Batch` with token ids and source units too.

    ``where``: keep only the tokens an :class:`arcx.prompts.annotations.TokenFilter` (or
    its text form, ``"role=answer cells"``) selects; needs a store of format 3.
    ``normalize="mean_norm"``: multiply every row by ``norm_scale`` = sqrt(d_model) / the
    store's mean L2 norm of this site and layer, merged from the statistics the run stored
    (over every stored token, before ``where`` and the excluded ids), so rows have mean
    norm sqrt(d_model) as SAE trainers expect; ``"none"`` (default) leaves them as stored.
    """

    def __init__(
        self,
        store: str | Storage,
        *,
        site: str,
        layer: int,
        batch_size: int,
        seed: int = 0,
        exclude_token_ids: Iterable[int] | None = None,
        shuffle_buffer_tokens: int = DEFAULT_BUFFER_TOKENS,
        open_parts: int = DEFAULT_OPEN_PARTS,
        verify_checksums: bool = True,
        dtype: type | np.dtype = np.float32,
        epochs: int | None = 1,
        shuffle: bool = True,
        drop_last: bool = False,
        where: TokenFilter | str | None = None,
        normalize: str = "none",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle and shuffle_buffer_tokens < batch_size:
            raise ValueError(
                f"shuffle_buffer_tokens ({shuffle_buffer_tokens}) must be >= batch_size "
                f"({batch_size}); a buffer several times the batch mixes better"
            )
        if open_parts < 1:
            raise ValueError(f"open_parts must be >= 1, got {open_parts}")
        if epochs is not None and epochs < 0:
            raise ValueError(f"epochs must be >= 0 or None (endless), got {epochs}")
        self.storage = open_storage(store) if isinstance(store, str) else store
        self.info: StoreInfo = read_store(self.storage)
        self.tensor = self.info.check_site_layer(site, layer)
        self.site, self.layer = site, layer
        self.batch_size = batch_size
        self.seed = seed
        self.buffer_tokens = shuffle_buffer_tokens
        self.open_parts = open_parts
        self.verify = verify_checksums
        self.dtype = np.dtype(dtype)
        self.epochs = epochs
        self.shuffle = shuffle
        self.drop_last = drop_last
        if exclude_token_ids is None:
            exclude_token_ids = default_excluded_ids(self.info.manifest, self.info.uri)
        self.excluded = np.asarray(as_id_array(exclude_token_ids), dtype=np.int32)
        self.d_model = self.info.d_model
        try:
            self.where = TokenFilter.parse(where) if isinstance(where, str) else where
        except ValueError as err:
            raise SaeDataError(f"where: {err}") from None
        if normalize not in NORMALIZATIONS:
            raise SaeDataError(f"normalize must be one of {NORMALIZATIONS}, not {normalize!r}")
        self.norm_scale = 1.0
        if normalize == "mean_norm":
            self.norm_scale = self._mean_norm_scale()
        self._verified: set[str] = set()
        self._buffer: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if not self.info.parts:
            raise SaeDataError(
                f"the store {self.info.uri} has no committed unit yet "
                f"(0/{self.info.units_total}); wait for the job or run it"
            )

    @property
    def parts(self) -> tuple[PartRef, ...]:
        return self.info.parts

    def _mean_norm_scale(self) -> float:
        """sqrt(d_model) / the mean L2 norm, from the parts' stored statistics."""
        merged: Moments | None = None
        for ref in self.parts:
            data = self.storage.read_mapped(ref.key)
            try:
                m = Moments.from_tensors(tensor_views(data)[0], self.site, self.layer)
            except KeyError:
                raise SaeDataError(
                    f"unit {ref.unit} part {ref.key} has no statistics (written before store "
                    "format 3); use normalize='none'"
                ) from None
            except HeaderError as err:
                raise SaeDataError(f"unit {ref.unit} part {ref.key}: {err}") from None
            merged = m if merged is None else merged.merge(m)
        if merged is None or merged.count == 0 or merged.norm <= 0:
            raise SaeDataError(f"the store {self.info.uri} has no tokens to normalise by")
        return float(np.sqrt(self.d_model) / merged.norm)

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self.batches():
            yield batch.activations

    def batches(self) -> Iterator[Batch]:
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            rows = 0
            for batch in self._epoch(epoch):
                rows += len(batch.token_ids)
                yield batch
            if rows == 0:
                raise SaeDataError(
                    f"the committed units of {self.info.uri} hold no token outside the excluded "
                    f"ids {[int(i) for i in self.excluded]}; nothing to train on"
                )
            epoch += 1

    # -- one epoch ------------------------------------------------------------------

    def _open(self, ref: PartRef, rng: np.random.Generator | None) -> _Cursor:
        verify = self.verify and ref.key not in self._verified
        part = open_part(
            self.storage, ref, self.tensor, verify=verify, annotations=self.where is not None
        )
        if verify:
            self._verified.add(ref.key)  # hashed once per loader, not once per epoch
        if part.activations.shape[1] != self.d_model:
            raise SaeDataError(
                f"unit {ref.unit} part {ref.key}: {self.tensor} has width "
                f"{part.activations.shape[1]}, the manifest says dModel {self.d_model}"
            )
        wanted = ~np.isin(part.token_ids, self.excluded)
        if self.where is not None and part.annotations is not None:
            wanted &= self.where.mask(part.annotations)
        keep = np.flatnonzero(wanted)
        rows = rng.permutation(keep) if rng is not None else keep
        return _Cursor(part, rows)

    def _rows(self, rng: np.random.Generator | None) -> Iterator[Batch]:
        """Row chunks drawn round-robin from up to ``open_parts`` open parts."""
        order = rng.permutation(len(self.parts)) if rng is not None else range(len(self.parts))
        pending = deque(self.parts[i] for i in order)
        active: list[_Cursor] = []
        chunk = max(1, self.buffer_tokens // (4 * self.open_parts)) if rng is not None else 4096
        while True:
            while len(active) < self.open_parts and pending:
                cursor = self._open(pending.popleft(), rng)
                if cursor.left:
                    active.append(cursor)
            if not active:
                return
            for cursor in active:
                acts, tokens = cursor.take(chunk, self.dtype, self.norm_scale)
                yield Batch(acts, tokens, np.full(len(tokens), cursor.part.ref.unit, np.int32))
            active = [c for c in active if c.left]

    def _epoch(self, epoch: int) -> Iterator[Batch]:
        if not self.shuffle:
            yield from self._rebatch(self._rows(None))
            return
        rng = np.random.default_rng([self.seed, epoch])
        cap = self.buffer_tokens
        if self._buffer is None:  # allocated once, reused by every epoch
            self._buffer = (
                np.empty((cap, self.d_model), self.dtype),
                np.empty(cap, np.int32),
                np.empty(cap, np.int32),
            )
        acts, tokens, units = self._buffer
        filled = np.zeros(cap, bool)
        free = np.arange(cap)  # slots to fill, in order
        source = self._rows(rng)
        spill: Batch | None = None  # rows read but not yet in the buffer
        exhausted = False
        while True:
            # Fill the free slots; the rows that stayed keep theirs (no copy).
            while len(free) and not exhausted:
                if spill is None:
                    spill = next(source, None)
                    if spill is None:
                        exhausted = True
                        break
                k = min(len(free), len(spill.token_ids))
                slots, free = free[:k], free[k:]
                acts[slots] = spill.activations[:k]
                tokens[slots] = spill.token_ids[:k]
                units[slots] = spill.units[:k]
                filled[slots] = True
                rest = len(spill.token_ids) - k
                spill = (
                    Batch(spill.activations[k:], spill.token_ids[k:], spill.units[k:])
                    if rest
                    else None
                )
            held = np.flatnonzero(filled)
            n = len(held)
            if n == 0:
                return
            # A uniformly random subset of the buffer leaves (half of it, in whole batches,
            # or everything at the end of the epoch); its slots take the next rows.
            n_out = (
                n
                if exhausted
                else max(self.batch_size, (n // 2) // self.batch_size * self.batch_size)
            )
            out = rng.permutation(held)[:n_out]
            out_acts, out_tokens, out_units = acts[out], tokens[out], units[out]
            filled[out] = False
            free = np.sort(out)
            for s in range(0, n_out, self.batch_size):
                e = s + self.batch_size
                if e > n_out and self.drop_last:
                    break
                yield Batch(out_acts[s:e], out_tokens[s:e], out_units[s:e])
            if exhausted:
                return

    def _rebatch(self, chunks: Iterator[Batch]) -> Iterator[Batch]:
        """Cut a stream of row chunks into batches of exactly ``batch_size`` rows."""
        held: list[Batch] = []
        count = 0
        for c in chunks:
            held.append(c)
            count += len(c.token_ids)
            while count >= self.batch_size:
                joined = _concat(held)
                b = self.batch_size
                yield Batch(joined.activations[:b], joined.token_ids[:b], joined.units[:b])
                held = [Batch(joined.activations[b:], joined.token_ids[b:], joined.units[b:])]
                count -= b
        if count and not self.drop_last:
            yield _concat(held)


def _concat(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    return Batch(
        np.concatenate([b.activations for b in batches]),
        np.concatenate([b.token_ids for b in batches]),
        np.concatenate([b.units for b in batches]),
    )
