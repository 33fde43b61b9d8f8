"""Attention speed and peak memory per implementation, the materialised reference as the baseline.

    python bench/attention.py                                  # T = 1024..8192, reference + blocked + torch
    python bench/attention.py --lengths 1024 2048 --impls reference blocked
    python bench/attention.py --dtype bfloat16 --impls reference flash torch_sdpa   # on a GPU

Shape (``--shape``): Qwen2.5-0.5B's attention (14 query heads, 2 key/value heads, head_dim
64; the default) or Qwen2.5-7B's (28, 4, 128), batch 1, one causal segment filling the row (``--segments N`` packs N equal segments instead). Each
(implementation, T) runs in a fresh subprocess so peak memories do not mix; it reports:

- ms per call and tokens/s at steady state (median of ``--reps`` jitted calls after a warm-up),
  and the process's CPU time per call (all threads; on a busy machine a fairer comparison);
- GFLOP/s of the causal work, 4 * H * hd * (L^2 / 2) FLOPs per segment of length L (whatever
  an implementation computes beyond the causal triangles counts against it);
- speed-up over ``reference`` measured in the same run (above 1: faster);
- peak memory: on CPU the process's peak RSS (VmHWM) during the calls above its RSS before
  them (inputs built, program compiled, freed heap returned with ``malloc_trim``), i.e. what
  a call allocates; on an accelerator the device's ``peak_bytes_in_use`` (inputs included);
- compile: tracing and compiling (ahead of the first call; torch: its first call).

``torch_sdpa`` is PyTorch's ``scaled_dot_product_attention`` (is_causal, GQA), what
transformers runs; with several segments it gets the dense block-diagonal mask transformers
would build. ``splash``/``flash`` off their hardware run in Pallas interpret mode: correct
but not a speed figure (the table marks them).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

IMPLS = ("reference", "blocked", "splash", "flash", "torch_sdpa")
DEFAULT_IMPLS = ("reference", "blocked", "torch_sdpa")
# (query heads, key/value heads, head_dim) of the models' attention
SHAPES = {"qwen2.5-0.5b": (14, 2, 64), "qwen2.5-7b": (28, 4, 128)}
_RSS_KIND = "peak RSS during the calls above the RSS before them"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> int:
    """Give freed heap back to the OS and reset the peak-RSS mark (VmHWM) to the current RSS;
    return that RSS in bytes. Memory a later call allocates then shows as RSS growth."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):  # older kernels: the peak then includes earlier work
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def _peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * 1024


def _inputs(shape: str, t: int, segments: int, seed: int = 0):
    import numpy as np

    heads, kv_heads, hd = SHAPES[shape]
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, t, heads, hd), dtype=np.float32)
    k = rng.standard_normal((1, t, kv_heads, hd), dtype=np.float32)
    v = rng.standard_normal((1, t, kv_heads, hd), dtype=np.float32)
    seg = np.zeros((1, t), np.int32)
    pos = np.zeros((1, t), np.int32)
    at = 0
    for i, n in enumerate(_segment_lengths(t, segments)):
        seg[0, at : at + n] = i + 1
        pos[0, at : at + n] = np.arange(n)
        at += n
    return q, k, v, seg, pos


def _time(fn, reps: int) -> tuple[float, float, float, int]:
    """(first call s, median wall s and median process CPU s of ``reps`` later calls, RSS
    before the first call).

    The peak-RSS mark is reset just before the first call (after compilation, where the
    caller compiles ahead), so the peak covers the calls only. CPU time (all threads) is
    less sensitive than wall time to other processes on a busy machine."""
    rss = _reset_peak_rss()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    fn()
    walls, cpus = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return first, statistics.median(walls), statistics.median(cpus), rss


def _worker_jax(
    impl: str, shape: str, t: int, segments: int, dtype: str, reps: int, blocks: dict
) -> dict:
    import jax
    import jax.numpy as jnp

    from arcx.model.attention import attention

    q, k, v, seg, pos = _inputs(shape, t, segments)
    dt = jnp.dtype(dtype)
    q, k, v = (jnp.asarray(x, dt) for x in (q, k, v))
    seg, pos = jnp.asarray(seg), jnp.asarray(pos)
    fn = jax.jit(
        lambda q, k, v, s, p: attention(
            q, k, v, s, s, impl=impl, q_positions=p, kv_positions=p, **blocks
        )
    )
    device = jax.devices()[0]
    t0 = time.perf_counter()
    compiled = fn.lower(q, k, v, seg, pos).compile()
    compile_s = time.perf_counter() - t0
    _, median, cpu, before = _time(lambda: compiled(q, k, v, seg, pos).block_until_ready(), reps)
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        peak, kind = stats["peak_bytes_in_use"], f"{device.platform} peak_bytes_in_use"
    else:
        peak, kind = _peak_rss_bytes() - before, _RSS_KIND
    return dict(
        first=compile_s,
        median=median,
        cpu=cpu,
        peak=peak,
        kind=kind,
        device=str(device.device_kind),
        platform=device.platform,
    )


def _worker_torch(shape: str, t: int, segments: int, dtype: str, reps: int) -> dict:
    import torch
    import torch.nn.functional as F

    q, k, v, seg, _ = _inputs(shape, t, segments)
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    # [B, H, T, hd] as transformers passes them
    q, k, v = (torch.from_numpy(x).permute(0, 2, 1, 3).to(dev, dt) for x in (q, k, v))
    mask = None
    if segments > 1:
        s = torch.from_numpy(seg).to(dev)
        mask = (s[:, None, :, None] == s[:, None, None, :]) & torch.ones(
            t, t, dtype=torch.bool, device=dev
        ).tril()

    def call() -> None:
        with torch.inference_mode():
            F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=True
            )
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    first, median, cpu, before = _time(call, reps)
    if cuda:
        peak, kind = torch.cuda.max_memory_allocated(), "torch max_memory_allocated"
        name = torch.cuda.get_device_name()
    else:
        peak, kind, name = _peak_rss_bytes() - before, _RSS_KIND, "cpu"
    return dict(
        first=first,
        median=median,
        cpu=cpu,
        peak=peak,
        kind=kind,
        device=name,
        platform="gpu" if cuda else "cpu",
    )


def _run_one(impl: str, t: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        impl,
        "--lengths",
        str(t),
        "--shape",
        args.shape,
        "--segments",
        str(args.segments),
        *(["--block-q", str(args.block_q)] if args.block_q else []),
        *(["--block-kv", str(args.block_kv)] if args.block_kv else []),
        "--dtype",
        args.dtype,
        "--reps",
        str(args.reps),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {args.timeout:.0f} s")
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return dict(error=f"failed, exit {proc.returncode}: {tail[:100]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _segment_lengths(t: int, segments: int) -> list[int]:
    import numpy as np

    bounds = np.linspace(0, t, segments + 1).astype(int)
    return [int(b - a) for a, b in itertools.pairwise(bounds)]


def _row(impl: str, t: int, r: dict, base: dict | None, shape: str, segments: int) -> str:
    if "error" in r:
        return f"| {impl} | {t} | {r['error']} | | | | | | |"
    heads, _, hd = SHAPES[shape]
    flops = 4 * heads * hd * sum(n * n / 2 for n in _segment_lengths(t, segments))
    speedup = f"{base['median'] / r['median']:.2f}x" if base and "median" in base else "n/a"
    native = {"splash": "tpu", "flash": "gpu"}.get(impl, r["platform"])
    note = " (interpret mode)" if native != r["platform"] else ""
    return (
        f"| {impl}{note} | {t} | {r['median'] * 1e3:.1f} | {r['cpu'] * 1e3:.1f} | "
        f"{t / r['median']:,.0f} | "
        f"{flops / r['median'] / 1e9:.1f} | {speedup} | {r['peak'] / 2**20:,.0f} | "
        f"{r['first']:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    p.add_argument("--impls", nargs="+", default=list(DEFAULT_IMPLS), choices=IMPLS)
    p.add_argument("--shape", default="qwen2.5-0.5b", choices=list(SHAPES))
    p.add_argument("--segments", type=int, default=1, help="equal packed segments per row")
    p.add_argument("--block-q", type=int, help="query block size (default: the implementation's)")
    p.add_argument("--block-kv", type=int, help="key block size (default: the implementation's)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--reference-up-to",
        type=int,
        help="skip the reference above this T (on CPU in fp32 it needs ~11 GB at T=8192)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    p.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        t = args.lengths[0]
        if args.worker == "torch_sdpa":
            out = _worker_torch(args.shape, t, args.segments, args.dtype, args.reps)
        else:
            blocks = dict(block_q=args.block_q, block_kv=args.block_kv)
            out = _worker_jax(
                args.worker, args.shape, t, args.segments, args.dtype, args.reps, blocks
            )
        print(json.dumps(out))
        return 0

    # No JAX in this process: on a GPU it would take the device memory the workers measure.
    impls = ["reference", *[i for i in args.impls if i != "reference"]]
    results: dict[tuple[str, int], dict] = {}
    for t in args.lengths:
        for impl in impls:
            if impl == "reference" and args.reference_up_to and t > args.reference_up_to:
                results[impl, t] = dict(error=f"skipped (--reference-up-to {args.reference_up_to})")
                continue
            results[impl, t] = _run_one(impl, t, args)
            print(f"# {impl} T={t}: {results[impl, t]}", file=sys.stderr, flush=True)

    heads, kv_heads, hd = SHAPES[args.shape]
    devices = {r["device"] for r in results.values() if "device" in r}
    kinds = sorted({r["kind"] for r in results.values() if "kind" in r})
    print(f"machine: {describe()}; devices {sorted(devices)}")
    print(
        f"attention of {args.shape}, batch 1, {heads} q heads / {kv_heads} kv heads / "
        f"head_dim {hd}, "
        f"{args.dtype}, {args.segments} segment(s) per row, median of {args.reps} calls; "
        f"blocks {args.block_q or 'default'} x {args.block_kv or 'default'}; "
        f"peak memory: {', '.join(kinds)}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    print()
    print(
        "| impl | T | ms/call | CPU ms/call | tokens/s | causal GFLOP/s | vs reference | peak MiB "
        "| compile s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for t in args.lengths:
        for impl in impls:
            print(
                _row(
                    impl,
                    t,
                    results[impl, t],
                    results.get(("reference", t)),
                    args.shape,
                    args.segments,
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
