"""Forward-pass speed: arcx (JAX, capture of 3 layers) against transformers (PyTorch).

    python bench/forward.py                      # the default shapes, on CPU or the accelerator
    python bench/forward.py --shapes tiny --reps 5 --dtype bfloat16

For each model shape, one random checkpoint is written to a temporary directory and read
by both implementations. Both run the same token ids: arcx's jitted ``forward`` capturing
``resid_post`` at 3 layers (first, middle, last), and ``Qwen2ForCausalLM`` with
``output_hidden_states=True`` under ``torch.inference_mode``. Reported per shape:

- compile: arcx's first call (trace + compile + one run), apart from steady state;
- tokens/s of each at steady state (median of ``--reps`` timed calls after a warm-up) and
  their ratio (arcx / transformers, above 1 means arcx is faster);
- MFU: model FLOPs per second over the machine's measured matmul peak. Model FLOPs per
  forward = 2 * (matmul parameters, LM head included) * tokens + 4 * layers * T * (heads *
  head_dim) * tokens (the attention scores and the weighted sum, non-causal count). The peak
  is the best of JAX and PyTorch on a square matmul in the benchmark's dtype, measured
before and after every shape.
The two implementations' timed calls alternate, so background load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import save_file

from arcx.model import Capture, Qwen2Config, forward, make_mesh
from arcx.model.params import load_params
from arcx.model.tiny import random_weights, tiny_config

SHAPES = {
    # the embedded default model's shape
    "tiny": dict(
        hidden_size=64,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=128,
        vocab_size=640,
        tie=True,
    ),
    # Qwen2.5-0.5B's width and depth with a small vocabulary
    "qwen2.5-0.5b-width": dict(
        hidden_size=896,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        intermediate_size=4864,
        vocab_size=2048,
        tie=True,
    ),
}
DEFAULT_RUNS = {"tiny": (8, 256), "qwen2.5-0.5b-width": (2, 128)}  # (batch, sequence length)


def _timed(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """(first call seconds, median of ``reps`` later calls) with a warm-up call between."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def _interleaved(
    a: Callable[[], object], b: Callable[[], object], reps: int
) -> tuple[float, float, float]:
    """(a's first call, median of a, median of b): warm-ups first, then a and b alternate so
    that load from other processes on the machine falls on both alike."""
    t0 = time.perf_counter()
    a()
    first = time.perf_counter() - t0
    a()
    b()
    b()
    ta, tb = [], []
    for _ in range(reps):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return first, statistics.median(ta), statistics.median(tb)


def matmul_peak(dtype: str, torch_device: str, n: int = 2048) -> tuple[float, float]:
    """Measured FLOP/s of an n x n x n matmul in JAX and in PyTorch."""
    import torch

    a = jnp.ones((n, n), dtype)
    mm = jax.jit(lambda x: x @ x)
    _, t_jax = _timed(lambda: mm(a).block_until_ready(), 5)
    ta = torch.ones((n, n), dtype=getattr(torch, dtype), device=torch_device)

    def torch_mm() -> None:
        (ta @ ta).sum().item()

    _, t_torch = _timed(torch_mm, 5)
    return 2 * n**3 / t_jax, 2 * n**3 / t_torch


def model_flops(cfg: Qwen2Config, batch: int, seq: int) -> float:
    d, hd = cfg.hidden_size, cfg.head_dim
    q, kv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * cfg.intermediate_size
    matmul_params = cfg.num_hidden_layers * per_layer + d * cfg.vocab_size
    tokens = batch * seq
    return 2 * matmul_params * tokens + 4 * cfg.num_hidden_layers * seq * q * tokens


def bench_shape(name: str, batch: int, seq: int, reps: int, dtype: str, torch_device: str) -> dict:
    import torch
    from transformers import Qwen2ForCausalLM

    s = SHAPES[name]
    raw = tiny_config(
        vocab_size=s["vocab_size"],
        hidden_size=s["hidden_size"],
        num_layers=s["num_layers"],
        num_heads=s["num_heads"],
        num_kv_heads=s["num_kv_heads"],
        intermediate_size=s["intermediate_size"],
        tie_word_embeddings=s["tie"],
        rope_theta=1_000_000.0,
        max_position_embeddings=4096,
    )
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "config.json").write_text(json.dumps(raw))
        save_file(random_weights(raw, seed=0), str(d / "model.safetensors"))
        cfg = Qwen2Config.from_file(d / "config.json")
        model = load_params(d, cfg, make_mesh(1, devices=jax.devices()[:1]), dtype)
        hf = (
            Qwen2ForCausalLM.from_pretrained(str(d), dtype=getattr(torch, dtype))
            .eval()
            .to(torch_device)
        )

    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq)).astype(np.int32)
    mask = np.ones_like(ids)
    n = cfg.num_hidden_layers
    capture = Capture(("resid_post",), (0, n // 2, n - 1))
    step = jax.jit(forward, static_argnums=3)
    j_ids, j_mask = jnp.asarray(ids), jnp.asarray(mask)

    def run_arcx() -> None:
        jax.block_until_ready(step(model, j_ids, j_mask, capture))

    t_ids = torch.tensor(ids, dtype=torch.long, device=torch_device)
    t_mask = torch.tensor(mask, dtype=torch.long, device=torch_device)

    def run_hf() -> None:
        with torch.inference_mode():
            out = hf(input_ids=t_ids, attention_mask=t_mask, output_hidden_states=True)
            out.logits.sum().item()  # waits for an accelerator

    compile_s, arcx_s, hf_s = _interleaved(run_arcx, run_hf, reps)
    tokens = batch * seq
    flops = model_flops(cfg, batch, seq)
    return {
        "shape": name,
        "batch x seq": f"{batch}x{seq}",
        "compile s": compile_s - arcx_s,
        "arcx tok/s": tokens / arcx_s,
        "hf tok/s": tokens / hf_s,
        "ratio": hf_s / arcx_s,
        "arcx GFLOP/s": flops / arcx_s / 1e9,
        "hf GFLOP/s": flops / hf_s / 1e9,
    }


def main() -> None:
    import torch

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--batch", type=int, help="override the batch size of every shape")
    p.add_argument("--seq", type=int, help="override the sequence length of every shape")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = p.parse_args()

    torch_device = "cuda" if torch.cuda.is_available() and jax.default_backend() == "gpu" else "cpu"
    peaks = [matmul_peak(args.dtype, torch_device)]
    dev = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {dev.platform} ({getattr(dev, 'device_kind', '')}), torch {torch.__version__} "
        f"on {torch_device}, torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}"
    )
    rows = []
    for name in args.shapes:
        batch, seq = DEFAULT_RUNS[name]
        rows.append(
            bench_shape(
                name, args.batch or batch, args.seq or seq, args.reps, args.dtype, torch_device
            )
        )
        peaks.append(matmul_peak(args.dtype, torch_device))
    # The best matmul rate seen (before and after each shape), so MFU is never flattered by a
    # peak measured while the machine was busier than during the model runs.
    peak = max(max(p) for p in peaks)
    print(
        f"dtype {args.dtype}; matmul peak {peak / 1e9:.1f} GFLOP/s (best of "
        + ", ".join(f"jax {j / 1e9:.0f} / torch {t / 1e9:.0f}" for j, t in peaks)
        + ")"
    )
    for r in rows:
        r["arcx MFU"] = r["arcx GFLOP/s"] * 1e9 / peak
        r["hf MFU"] = r["hf GFLOP/s"] * 1e9 / peak
    cols = list(rows[0])
    fmt = {
        "compile s": "{:.2f}",
        "arcx tok/s": "{:.0f}",
        "hf tok/s": "{:.0f}",
        "ratio": "{:.2f}",
        "arcx GFLOP/s": "{:.1f}",
        "hf GFLOP/s": "{:.1f}",
        "arcx MFU": "{:.1%}",
        "hf MFU": "{:.1%}",
    }
    cells = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
