"""Forward-pass speed: arcx (JAX, capture of 3 layers) against transformers (PyTorch).

    python bench/forward.py                      # the default runs, on CPU or the accelerator
    python bench/forward.py --shapes tiny --reps 5 --dtype bfloat16
    python bench/forward.py --shapes qwen2.5-0.5b-width --runs 1x512 --no-unrolled   # small check
    python bench/forward.py --shapes qwen2.5-7b-width --layers 1 --runs 1x64 --no-unrolled
                                                 # the 7B width, cut to 1 layer: checks the bench

The default shapes are those a CPU runs (tiny, 0.5B); the 7B width (about 6.5B parameters
with its small vocabulary) is for an accelerator (bench/device.sh).

For each model shape, one random checkpoint is written to a temporary directory and read
by both implementations. Both run the same token ids: arcx's jitted ``forward`` on one
packed segment per row (segment ids and positions, the runner's path) capturing
``resid_post`` at 3 layers (first, middle, last) with logits, and transformers'
``AutoModelForCausalLM`` (its default SDPA attention) with ``output_hidden_states=True``
under ``torch.inference_mode``. Reported per shape and batch x sequence length:

- compile s: arcx's lower + compile of that bucket with the layers under ``lax.scan``
  (what the runner uses), and, unless ``--no-unrolled``, with the scan fully unrolled
  (``forward(..., unroll=True)``: one copy of the layer per depth, the compile behaviour of
  the Python loop arcx had before the scan);
- tokens/s of each at steady state (median of ``--reps`` timed calls after a warm-up) and
  their ratio (arcx / transformers, above 1 means arcx is faster);
- MFU: model FLOPs per second over the machine's measured matmul peak. Model FLOPs per
  forward = 2 * (matmul parameters, LM head included) * tokens + 2 * layers * (heads *
  head_dim) * T * (T + 1) per row (the attention scores and the weighted sum over the causal
  triangle only). The peak is the best of JAX and PyTorch on a square matmul in the
  benchmark's dtype, measured before and after every shape.
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
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from machine import describe
from safetensors.numpy import save_file

from arcx.model import Capture, ModelConfig, forward, make_mesh
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
    # Qwen2.5-7B's width and depth (head_dim 128, 7 query heads per key/value head, an
    # untied LM head) with a small vocabulary
    "qwen2.5-7b-width": dict(
        hidden_size=3584,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
        intermediate_size=18944,
        vocab_size=2048,
        tie=False,
    ),
}
CPU_SHAPES = ["tiny", "qwen2.5-0.5b-width"]
# (batch, sequence length) per shape: ARC prompts reach 4-8k tokens
DEFAULT_RUNS = {
    "tiny": [(8, 256)],
    "qwen2.5-0.5b-width": [(1, 2048), (1, 8192)],
    "qwen2.5-7b-width": [(1, 2048), (1, 8192)],
}


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


def model_flops(cfg: ModelConfig, batch: int, seq: int) -> float:
    d, hd = cfg.hidden_size, cfg.head_dim
    q, kv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * cfg.intermediate_size
    matmul_params = cfg.num_hidden_layers * per_layer + d * cfg.vocab_size
    tokens = batch * seq
    causal_pairs = batch * seq * (seq + 1) // 2
    return 2 * matmul_params * tokens + 4 * cfg.num_hidden_layers * q * causal_pairs


def _compile_seconds(fn: Callable, *args: object, **kwargs: object) -> float:
    t0 = time.perf_counter()
    fn.lower(*args, **kwargs).compile()
    return time.perf_counter() - t0


def bench_shape(
    name: str,
    runs: list[tuple[int, int]],
    reps: int,
    dtype: str,
    torch_device: str,
    *,
    attention: str,
    unrolled: bool,
    layers: int | None = None,
) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM

    s = SHAPES[name]
    raw = tiny_config(
        vocab_size=s["vocab_size"],
        hidden_size=s["hidden_size"],
        num_layers=layers or s["num_layers"],
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
        cfg = ModelConfig.from_file(d / "config.json")
        model = load_params(d, cfg, make_mesh(1, devices=jax.devices()[:1]), dtype)
        hf = (
            AutoModelForCausalLM.from_pretrained(str(d), dtype=getattr(torch, dtype))
            .eval()
            .to(torch_device)
        )

    n = cfg.num_hidden_layers
    capture = Capture(("resid_post",), (0, n // 2, n - 1))
    static = dict(capture=capture, attention_impl=attention)
    step = jax.jit(partial(forward, **static))
    rows = []
    for batch, seq in runs:
        ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq)).astype(np.int32)
        j_ids = jnp.asarray(ids)
        seg = jnp.ones_like(j_ids)
        pos = jnp.broadcast_to(jnp.arange(seq, dtype=jnp.int32), (batch, seq))
        compile_scan = _compile_seconds(step, model, j_ids, segment_ids=seg, positions=pos)
        compile_unrolled = (
            _compile_seconds(
                jax.jit(partial(forward, unroll=True, **static)),
                model,
                j_ids,
                segment_ids=seg,
                positions=pos,
            )
            if unrolled
            else float("nan")
        )

        def run_arcx(j_ids: jax.Array = j_ids, seg: jax.Array = seg, pos: jax.Array = pos) -> None:
            jax.block_until_ready(step(model, j_ids, segment_ids=seg, positions=pos))

        t_ids = torch.tensor(ids, dtype=torch.long, device=torch_device)
        t_mask = torch.ones_like(t_ids)

        def run_hf(t_ids: object = t_ids, t_mask: object = t_mask) -> None:
            with torch.inference_mode():
                out = hf(input_ids=t_ids, attention_mask=t_mask, output_hidden_states=True)
                out.logits.sum().item()  # waits for an accelerator

        _, arcx_s, hf_s = _interleaved(run_arcx, run_hf, reps)
        tokens = batch * seq
        flops = model_flops(cfg, batch, seq)
        rows.append(
            {
                "shape": name if layers is None else f"{name} ({n} layers)",
                "batch x seq": f"{batch}x{seq}",
                "compile s scan": compile_scan,
                "compile s unrolled": compile_unrolled,
                "arcx tok/s": tokens / arcx_s,
                "hf tok/s": tokens / hf_s,
                "ratio": hf_s / arcx_s,
                "arcx GFLOP/s": flops / arcx_s / 1e9,
                "hf GFLOP/s": flops / hf_s / 1e9,
            }
        )
    return rows


def main() -> None:
    import torch

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shapes", nargs="+", default=CPU_SHAPES, choices=list(SHAPES))
    p.add_argument(
        "--runs",
        nargs="+",
        help="BATCHxSEQ runs for every shape instead of the defaults (e.g. 1x2048 1x8192)",
    )
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument(
        "--attention", default="auto", help="arcx's attention implementation (attention.py)"
    )
    p.add_argument(
        "--no-unrolled",
        dest="unrolled",
        action="store_false",
        help="skip compiling the unrolled baseline",
    )
    p.add_argument(
        "--layers",
        type=int,
        default=None,
        help="cut every shape to this many layers (to check a wide shape's bench on a small machine)",
    )
    args = p.parse_args()
    override = [tuple(int(x) for x in r.split("x")) for r in args.runs] if args.runs else None

    torch_device = "cuda" if torch.cuda.is_available() and jax.default_backend() == "gpu" else "cpu"
    peaks = [matmul_peak(args.dtype, torch_device)]
    dev = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {dev.platform} ({getattr(dev, 'device_kind', '')}), torch {torch.__version__} "
        f"on {torch_device}, torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}"
    )
    print(f"machine: {describe()}; arcx attention: {args.attention}")
    rows = []
    for name in args.shapes:
        rows += bench_shape(
            name,
            override or DEFAULT_RUNS[name],
            args.reps,
            args.dtype,
            torch_device,
            attention=args.attention,
            unrolled=args.unrolled,
            layers=args.layers,
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
        "compile s scan": "{:.2f}",
        "compile s unrolled": "{:.2f}",
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
