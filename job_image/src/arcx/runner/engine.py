"""The device side: jitted forward with capture, on-device compaction, generation.

One mesh (``data``, ``model``) over every device of the slice. A batch is built on each
host with ``jax.make_array_from_callback`` (only the rows its devices hold are
materialised). The forward returns the captured activations cast to the extraction
dtype, sharded by rows; a second small program gathers, shard by shard (``shard_map``),
only the kept positions, so padding never leaves the device. Each data shard is written
by exactly one host: the lowest process id among the devices that hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from arcx.runner.batching import Batch, Gather

DATA = "data"


@dataclass
class Pending:
    """A dispatched batch whose results have not been fetched yet."""

    batch: Batch
    gather: Gather
    compact: dict[str, jax.Array]  # [n_shards * K, D], sharded by rows
    argmax: jax.Array | None  # [R, A] replicated
    generated: jax.Array | None  # [R, max_new] replicated


@dataclass
class Fetched:
    batch: Batch
    gather: Gather
    shards: dict[int, dict[str, np.ndarray]]  # owned data shard -> name -> [count, D]
    argmax: np.ndarray | None
    generated: np.ndarray | None


class Engine:
    def __init__(
        self,
        loaded: Any,  # arcx.model.LoadedModel
        mesh: jax.sharding.Mesh,
        *,
        sites: list[str],
        layers: list[int],
        out_dtype: str,
        max_new_tokens: int,
    ) -> None:
        from arcx.model import Capture

        self.loaded = loaded
        self.model = loaded.model
        self.mesh = mesh
        self.capture = Capture(tuple(sites), tuple(layers))
        self.capture.check(loaded.config)
        self.keys = [f"{s}.{layer}" for s in sites for layer in layers]
        self.out_dtype = jnp.dtype(out_dtype)
        self.max_new_tokens = max_new_tokens
        self.n_shards = mesh.shape[DATA]
        self.rows_sharding = NamedSharding(mesh, P(DATA))
        self.replicated = NamedSharding(mesh, P())
        self.owned = self._owned_shards()
        self._forward = jax.jit(
            self._forward_impl, out_shardings=(self.rows_sharding, self.replicated)
        )
        self._gather = jax.jit(self._gather_impl)
        self._replicate = jax.jit(lambda x: x, out_shardings=self.replicated)

    # -- which host writes which shard -------------------------------------------------

    def _owned_shards(self) -> set[int]:
        devices = np.asarray(self.mesh.devices)
        me = jax.process_index()
        return {
            i
            for i in range(devices.shape[0])
            if min(d.process_index for d in devices[i].flat) == me
        }

    # -- programs ----------------------------------------------------------------------

    def _forward_impl(
        self, model: Any, ids: jax.Array, mask: jax.Array, logit_pos: jax.Array
    ) -> Any:
        from arcx.model import forward

        out = forward(model, ids, mask, self.capture, logit_positions=logit_pos)
        acts = {k: v.astype(self.out_dtype) for k, v in out.activations.items()}
        return acts, jnp.argmax(out.logits, axis=-1).astype(jnp.int32)

    def _gather_impl(self, acts: dict[str, jax.Array], rows: jax.Array, cols: jax.Array) -> Any:
        def local(a: dict[str, jax.Array], r: jax.Array, c: jax.Array) -> dict[str, jax.Array]:
            return {k: v[r, c] for k, v in a.items()}

        return jax.shard_map(
            local, mesh=self.mesh, in_specs=(P(DATA), P(DATA), P(DATA)), out_specs=P(DATA)
        )(acts, rows, cols)

    # -- host side ---------------------------------------------------------------------

    def _global(self, array: np.ndarray, sharding: NamedSharding) -> jax.Array:
        return jax.make_array_from_callback(array.shape, sharding, lambda idx: array[idx])

    def dispatch(
        self,
        batch: Batch,
        gather: Gather,
        ids: np.ndarray,
        mask: np.ndarray,
        logit_pos: np.ndarray,
        gen_ids: np.ndarray | None,
        gen_mask: np.ndarray | None,
    ) -> Pending:
        """Start the batch on the devices (asynchronous) and return a handle."""
        acts, argmax = self._forward(
            self.model,
            self._global(ids, self.rows_sharding),
            self._global(mask, self.rows_sharding),
            self._global(logit_pos, self.rows_sharding),
        )
        rows = self._global(gather.rows.reshape(-1), self.rows_sharding)
        cols = self._global(gather.cols.reshape(-1), self.rows_sharding)
        compact = self._gather(acts, rows, cols)
        generated = None
        if gen_ids is not None and gen_mask is not None and self.max_new_tokens > 0:
            from arcx.model import greedy_generate

            generated = greedy_generate(
                self.model,
                self._global(gen_ids, self.rows_sharding),
                self._global(gen_mask, self.rows_sharding),
                max_new_tokens=self.max_new_tokens,
                eos_token_ids=self.loaded.eos_token_ids,
                pad_token_id=self.loaded.pad_token_id,
            )
            generated = self._replicate(generated)
        return Pending(batch, gather, compact, argmax, generated)

    def fetch(self, pending: Pending) -> Fetched:
        """Copy this host's kept rows (and the small replicated outputs) to host memory."""
        k = pending.gather.rows.shape[1]
        shards: dict[int, dict[str, np.ndarray]] = {}
        for name, arr in pending.compact.items():
            for shard in arr.addressable_shards:
                s = (shard.index[0].start or 0) // k
                if s not in self.owned or name in shards.get(s, {}):
                    continue
                count = pending.gather.counts[s]
                shards.setdefault(s, {})[name] = np.asarray(shard.data)[:count]
        argmax = _replicated_to_numpy(pending.argmax)
        generated = _replicated_to_numpy(pending.generated)
        return Fetched(pending.batch, pending.gather, shards, argmax, generated)


def _replicated_to_numpy(arr: jax.Array | None) -> np.ndarray | None:
    if arr is None:
        return None
    if arr.is_fully_addressable:
        return np.asarray(arr)
    return np.asarray(arr.addressable_shards[0].data)
