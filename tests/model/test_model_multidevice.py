"""Sharding: the same numbers on 1 CPU device and on 4 (model axis 1 and 2).

The 4-device runs happen in a subprocess started with ``JAX_NUM_CPU_DEVICES=4`` (the
``jax_num_cpu_devices`` option), since a process's device count is fixed at start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from arcx.model import Capture, forward, greedy_generate, load_model, make_mesh

WORKER = Path(__file__).with_name("multidevice_worker.py")


AXES = (1, 2)


@pytest.fixture(scope="module")
def four_device_runs(tiny_dir, tmp_path_factory, make_batch) -> dict:
    """Inputs and, per model axis, what the 4-device subprocess computed."""
    tmp = tmp_path_factory.mktemp("multidevice")
    ids, mask = make_batch(600, [10, 4, 7, 10], side="left", seed=11)
    np.savez(tmp / "in.npz", ids=ids, mask=mask)
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [
            sys.executable,
            str(WORKER),
            str(tiny_dir),
            str(tmp / "in.npz"),
            str(tmp / "out"),
            *map(str, AXES),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"ids": ids, "mask": mask, **{a: np.load(tmp / f"out-{a}.npz") for a in AXES}}


@pytest.mark.slow
@pytest.mark.parametrize("model_axis", AXES)
def test_four_devices_match_one(model_axis, four_device_runs, tiny_dir):
    ids, mask, got = four_device_runs["ids"], four_device_runs["mask"], four_device_runs[model_axis]
    lm = load_model(str(tiny_dir), mesh=make_mesh(1, devices=jax.devices()[:1]))
    info = json.loads(str(got["info"]))

    assert info["mesh"] == {"data": 4 // model_axis, "model": model_axis}
    assert info["logits_devices"] == 4
    if model_axis == 2:  # heads and vocabulary split over "model", halves on each device
        assert info["q_spec"] == ["None", "None", "model"] and info["embed_spec"] == [
            "model",
            "None",
        ]
        assert info["q_shard_shape"] == [4, 64, 32]
    else:
        assert info["q_spec"] == ["None", "None", "None"] and info["q_shard_shape"] == [4, 64, 64]

    n = lm.config.num_hidden_layers
    cap = Capture(("resid_pre", "attn_out", "resid_post"), (0, n - 1))
    ref = jax.jit(forward, static_argnums=3)(lm.model, ids, mask, cap)
    real = mask.astype(bool)
    # tensor parallelism changes the order of reductions: fp32 rounding differences only
    np.testing.assert_allclose(got["logits"][real], np.asarray(ref.logits)[real], atol=1e-4, rtol=0)
    for key, want in ref.activations.items():
        np.testing.assert_allclose(
            got[f"act:{key}"][real], np.asarray(want)[real], atol=1e-4, rtol=0, err_msg=key
        )
    gen = greedy_generate(
        lm.model,
        ids,
        mask,
        max_new_tokens=6,
        eos_token_ids=lm.eos_token_ids,
        pad_token_id=lm.pad_token_id,
    )
    np.testing.assert_array_equal(got["gen"], np.asarray(gen))
