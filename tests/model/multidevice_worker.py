"""Run by test_model_multidevice.py in a fresh process with 4 CPU devices.

Usage: python multidevice_worker.py MODEL_DIR INPUTS.npz OUT_PREFIX MODEL_AXIS...
For each MODEL_AXIS, loads the model onto a (4 / MODEL_AXIS, MODEL_AXIS) mesh, runs a jitted forward with
capture and greedy generation on batch-sharded inputs, and saves the results plus
the shardings it observed to OUT_PREFIX-<axis>.npz.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np

from arcx.model import Capture, batch_sharding, forward, greedy_generate, load_model, make_mesh


def main(model_dir: str, inputs: str, out: str, model_axis: int) -> None:
    assert jax.device_count() == 4, jax.devices()
    mesh = make_mesh(model_axis)
    lm = load_model(model_dir, mesh=mesh)
    data = np.load(inputs)
    ids = jax.device_put(data["ids"], batch_sharding(mesh))
    mask = jax.device_put(data["mask"], batch_sharding(mesh))
    cap = Capture(("resid_pre", "attn_out", "resid_post"), (0, lm.config.num_hidden_layers - 1))
    result = jax.jit(forward, static_argnums=3)(lm.model, ids, mask, cap)
    gen = greedy_generate(
        lm.model,
        ids,
        mask,
        max_new_tokens=6,
        eos_token_ids=lm.eos_token_ids,
        pad_token_id=lm.pad_token_id,
    )
    q = lm.model.layers.attn.q_kernel[...]  # [L, D, H * hd]
    info = {
        "mesh": dict(mesh.shape),
        "q_spec": [str(a) for a in q.sharding.spec],
        "q_shard_shape": list(q.addressable_shards[0].data.shape),
        "embed_spec": [str(a) for a in lm.model.embed[...].sharding.spec],
        "logits_devices": len(result.logits.sharding.device_set),
    }
    arrays = {f"act:{k}": np.asarray(v) for k, v in result.activations.items()}
    np.savez(
        out, logits=np.asarray(result.logits), gen=np.asarray(gen), info=json.dumps(info), **arrays
    )


if __name__ == "__main__":
    for axis in sys.argv[4:]:
        main(sys.argv[1], sys.argv[2], f"{sys.argv[3]}-{axis}.npz", int(axis))
