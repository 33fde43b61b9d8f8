"""The device side: jitted forward with capture, on-device compaction, generation.

The inputs come from :func:`arcx.runner.device_inputs.build_inputs` (packed rows: segment
ids and positions per segment). One mesh (``data``, ``model``) over every device of the slice. A batch is built on each
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

from arcx.model.sharding import DATA, batch_sharding
from arcx.runner.device_inputs import DeviceInputs


@dataclass
class Pending:
    """A dispatched batch whose results have not been fetched yet."""

    inputs: DeviceInputs
    compact: dict[str, jax.Array]  # [n_shards * K, D], sharded by rows
    argmax: jax.Array | None  # [R, A] replicated; None when nothing is scored
    generated: jax.Array | None  # [R, max_new] replicated
    stats: dict[str, dict[str, jax.Array]] | None = None  # name -> field -> [n_shards, ...]


@dataclass
class Fetched:
    inputs: DeviceInputs
    shards: dict[int, dict[str, np.ndarray]]  # owned data shard -> name -> [count, D]
    argmax: np.ndarray | None
    generated: np.ndarray | None
    # owned data shard -> name -> the shard's moments (arcx.runner.activation_stats)
    stats: dict[int, dict[str, dict[str, np.ndarray]]] | None = None


class Engine:
    """The device programs of one job.

    ``scoring``: compute the logits at the answer positions (their argmax is the
    teacher-forced guess). Without it the forward is asked to stop after the deepest
    captured layer (no later layer, no final norm, no LM head).
    """

    def __init__(
        self,
        loaded: Any,  # arcx.model.LoadedModel
        mesh: jax.sharding.Mesh,
        *,
        sites: list[str],
        layers: list[int],
        out_dtype: str,
        max_new_tokens: int,
        scoring: bool = True,
        attention: str = "auto",
        stats: bool = True,
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
        self.scoring = scoring
        self.attention = attention
        self.stats = stats  # moments of the kept rows, computed in the gather program
        self.packing = True  # rows may hold several sequences (the forward reads segments)
        self.n_shards = mesh.shape[DATA]
        self.rows_sharding = batch_sharding(mesh)
        self.replicated = NamedSharding(mesh, P())
        self.owned = self._owned_shards()
        outs = (self.rows_sharding, self.replicated) if scoring else (self.rows_sharding,)
        self._forward = jax.jit(self._forward_impl, out_shardings=outs)
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
        self,
        model: Any,
        ids: jax.Array,
        segment_ids: jax.Array,
        positions: jax.Array,
        logit_pos: jax.Array | None,
    ) -> Any:
        from arcx.model import forward

        out = forward(
            model,
            ids,
            capture=self.capture,
            segment_ids=segment_ids,
            positions=positions,
            logit_positions=logit_pos,
            compute_logits=self.scoring,
            attention_impl=self.attention,
            mesh=self.mesh,
        )
        acts = {k: v.astype(self.out_dtype) for k, v in out.activations.items()}
        if not self.scoring:
            return (acts,)
        return acts, jnp.argmax(out.logits, axis=-1).astype(jnp.int32)

    def _gather_impl(
        self, acts: dict[str, jax.Array], rows: jax.Array, cols: jax.Array, counts: jax.Array
    ) -> Any:
        from arcx.runner.activation_stats import device_moments

        def local(a: dict[str, jax.Array], r: jax.Array, c: jax.Array, n: jax.Array) -> Any:
            kept = {k: v[r, c] for k, v in a.items()}
            if not self.stats:
                return kept, {}
            # The shard's first n kept rows are real; the moments get a leading shard axis.
            moments = {
                k: {f: x[None] for f, x in device_moments(v, n[0]).items()} for k, v in kept.items()
            }
            return kept, moments

        return jax.shard_map(
            local, mesh=self.mesh, in_specs=(P(DATA),) * 4, out_specs=(P(DATA), P(DATA))
        )(acts, rows, cols, counts)

    # -- host side ---------------------------------------------------------------------

    def _global(self, array: np.ndarray, sharding: NamedSharding) -> jax.Array:
        return jax.make_array_from_callback(array.shape, sharding, lambda idx: array[idx])

    def dispatch(self, inputs: DeviceInputs) -> Pending:
        """Start the batch on the devices (asynchronous) and return a handle."""
        rows = self.rows_sharding
        logit_pos = None
        if self.scoring:
            if inputs.logit_positions is None:
                raise ValueError("a scoring engine needs the batch's logit positions")
            logit_pos = self._global(inputs.logit_positions, rows)
        outs = self._forward(
            self.model,
            self._global(inputs.ids, rows),
            self._global(inputs.segment_ids, rows),
            self._global(inputs.positions, rows),
            logit_pos,
        )
        acts, argmax = outs[0], (outs[1] if self.scoring else None)
        gather = inputs.gather
        compact, stats = self._gather(
            acts,
            self._global(gather.rows.reshape(-1), rows),
            self._global(gather.cols.reshape(-1), rows),
            self._global(np.asarray(gather.counts, np.int32), rows),
        )
        generated = None
        if inputs.gen_ids is not None and inputs.gen_mask is not None and self.max_new_tokens > 0:
            generated = self._replicate(self._generate(inputs.gen_ids, inputs.gen_mask))
        return Pending(inputs, compact, argmax, generated, stats or None)

    def _generate(self, gen_ids: np.ndarray, gen_mask: np.ndarray) -> jax.Array:
        from arcx.model import greedy_generate

        return greedy_generate(
            self.model,
            self._global(gen_ids, self.rows_sharding),
            self._global(gen_mask, self.rows_sharding),
            max_new_tokens=self.max_new_tokens,
            eos_token_ids=self.loaded.eos_token_ids,
            pad_token_id=self.loaded.pad_token_id,
            attention_impl=self.attention,
            mesh=self.mesh,
        )

    def fetch(self, pending: Pending) -> Fetched:
        """Copy this host's kept rows (and the small replicated outputs) to host memory."""
        gather = pending.inputs.gather
        k = gather.rows.shape[1]
        shards: dict[int, dict[str, np.ndarray]] = {}
        for name, arr in pending.compact.items():
            for shard in arr.addressable_shards:
                s = (shard.index[0].start or 0) // k
                if s not in self.owned or name in shards.get(s, {}):
                    continue
                shards.setdefault(s, {})[name] = np.asarray(shard.data)[: gather.counts[s]]
        argmax = _replicated_to_numpy(pending.argmax)
        generated = _replicated_to_numpy(pending.generated)
        return Fetched(pending.inputs, shards, argmax, generated, self._fetch_stats(pending))

    def _fetch_stats(self, pending: Pending) -> dict[int, dict[str, dict[str, np.ndarray]]] | None:
        if pending.stats is None:
            return None
        out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
        for name, fields in pending.stats.items():
            for field, arr in fields.items():
                for shard in arr.addressable_shards:
                    s = shard.index[0].start or 0
                    if s in self.owned:
                        out.setdefault(s, {}).setdefault(name, {})[field] = np.asarray(shard.data)[
                            0
                        ]
        return out


def _replicated_to_numpy(arr: jax.Array | None) -> np.ndarray | None:
    if arr is None:
        return None
    if arr.is_fully_addressable:
        return np.asarray(arr)
    return np.asarray(arr.addressable_shards[0].data)
