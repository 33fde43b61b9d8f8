"""The full forward with the Pallas kernels under ``shard_map`` on a 4-device CPU mesh.

``forward(..., mesh=...)`` hands the mesh to the attention call of every layer, so splash
and flash (interpret mode here) run per shard instead of on inputs gathered onto every
device. The 4-device run happens in a subprocess (a process's device count is fixed at
start-up), as in test_model_multidevice.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_WORKER = """
import json, sys
import numpy as np, jax
from arcx.model import Capture, batch_sharding, forward, load_model, make_mesh

assert jax.device_count() == 4, jax.devices()
rng = np.random.default_rng(3)
t = 256
layout = [[200, 56], [256], [90, 90, 40], [17, 120]]  # packed rows, the last ones padded
ids = np.zeros((4, t), np.int32)
seg = np.zeros((4, t), np.int32)
pos = np.zeros((4, t), np.int32)
for r, lengths in enumerate(layout):
    start = 0
    for s, n in enumerate(lengths, 1):
        ids[r, start : start + n] = rng.integers(3, 500, n)
        seg[r, start : start + n] = s
        pos[r, start : start + n] = np.arange(n)
        start += n
out = {"real": (seg > 0).tolist()}
for model_axis in (1, 2):
    mesh = make_mesh(model_axis)
    lm = load_model(sys.argv[1], mesh=mesh, dtype="float32")
    cap = Capture(("attn_out", "resid_post"), (0, lm.config.num_hidden_layers - 1))
    put = lambda a: jax.device_put(a, batch_sharding(mesh))
    for impl in ("blocked", "splash", "flash"):
        fn = jax.jit(
            lambda m, i, s, p: forward(
                m, i, capture=cap, segment_ids=s, positions=p, attention_impl=impl, mesh=mesh
            )
        )
        args = (lm.model, put(ids), put(seg), put(pos))
        text = fn.lower(*args).as_text()
        res = fn(*args)
        out[f"{impl}/{model_axis}"] = {
            "per_shard": "shard_map" in text or "manual" in text,
            "logits": np.asarray(res.logits).tolist(),
            **{k: np.asarray(v).tolist() for k, v in res.activations.items()},
        }
print(json.dumps(out))
"""


@pytest.mark.slow
def test_kernels_through_the_forward_match_blocked_on_four_devices(tiny_dir) -> None:
    """Forced splash and flash through the whole forward on (4, 1) and (2, 2) meshes run per
    shard and give blocked attention's logits and captured sites (fp32)."""
    import numpy as np

    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER, str(tiny_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    real = np.asarray(out["real"], bool)
    for model_axis in (1, 2):
        want = out[f"blocked/{model_axis}"]
        assert not want["per_shard"]  # XLA partitions blocked attention itself
        for impl in ("splash", "flash"):
            got = out[f"{impl}/{model_axis}"]
            assert got["per_shard"], f"{impl} on model axis {model_axis} is not under shard_map"
            for key in ("logits", "attn_out.0", "resid_post.3"):
                np.testing.assert_allclose(
                    np.asarray(got[key])[real],
                    np.asarray(want[key])[real],
                    atol=2e-5,
                    rtol=0,
                    err_msg=f"{impl}/model={model_axis}/{key}",
                )
