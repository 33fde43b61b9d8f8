"""Greedy generation with a KV cache: batched, left or right padding, per-row stopping.

The prompt fills cache slots ``0..T-1`` (padding slots are marked invalid and never
attended to); generated token ``n`` is written at slot ``T + n`` for every row, and its
position is the row's real-token count plus ``n``, so padding on either side gives the
same positions as an unpadded prompt. A row that has produced an end-of-turn token emits
``pad_token_id`` from then on; the loop ends when every row is done or after
``max_new_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from arcx.model.decoder import CausalLM, decode_step, prefill


def greedy_generate(
    model: CausalLM,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    attention_impl: str = "auto",
    mesh: Mesh | None = None,
) -> jax.Array:
    """Generated tokens [B, max_new_tokens] int32 (the prompt is not repeated).

    ``attention_impl`` is the prompt's (prefill's) attention, run per shard over ``mesh``
    for the Pallas kernels (see :func:`arcx.model.decoder.forward`); each new token attends
    the cache through the reference path (one query row)."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if max_new_tokens == 0:
        return jnp.zeros((input_ids.shape[0], 0), jnp.int32)
    if not eos_token_ids:
        raise ValueError("eos_token_ids must name at least one end-of-turn token")
    return _generate(
        model,
        jnp.asarray(input_ids, jnp.int32),
        jnp.asarray(attention_mask, jnp.int32),
        jnp.asarray(list(eos_token_ids), jnp.int32),
        jnp.asarray(pad_token_id, jnp.int32),
        max_new_tokens=max_new_tokens,
        attention_impl=attention_impl,
        mesh=mesh,
    )


@partial(jax.jit, static_argnames=("max_new_tokens", "attention_impl", "mesh"))
def _generate(
    model: CausalLM,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    eos_ids: jax.Array,
    pad_id: jax.Array,
    *,
    max_new_tokens: int,
    attention_impl: str,
    mesh: Mesh | None,
) -> jax.Array:
    b, t = input_ids.shape
    cache_len = t + max_new_tokens - 1
    hidden, cache = prefill(
        model, input_ids, attention_mask, cache_len, attention_impl=attention_impl, mesh=mesh
    )
    last = t - 1 - jnp.argmax(attention_mask[:, ::-1], axis=1)  # last real token per row
    h_last = jnp.take_along_axis(hidden, last[:, None, None], axis=1)
    first = jnp.argmax(model.logits(h_last)[:, 0], axis=-1).astype(jnp.int32)
    n_real = jnp.sum(attention_mask, axis=1)
    key_valid = jnp.concatenate(
        [attention_mask > 0, jnp.ones((b, max_new_tokens - 1), dtype=bool)], axis=1
    )
    out = jnp.full((b, max_new_tokens), pad_id, jnp.int32).at[:, 0].set(first)
    done = jnp.isin(first, eos_ids)

    def cond(state: tuple) -> jax.Array:
        step, _, done, _, _ = state
        return (step < max_new_tokens) & ~jnp.all(done)

    def body(state: tuple) -> tuple:
        step, token, done, out, cache = state
        logits, cache = decode_step(model, token, n_real + step - 1, t + step - 1, key_valid, cache)
        nxt = jnp.where(done, pad_id, jnp.argmax(logits, axis=-1).astype(jnp.int32))
        out = jax.lax.dynamic_update_slice_in_dim(out, nxt[:, None], step, axis=1)
        return step + 1, nxt, done | jnp.isin(nxt, eos_ids), out, cache

    state = (jnp.asarray(1, jnp.int32), first, done, out, cache)
    return jax.lax.while_loop(cond, body, state)[3]
