"""Peak memory of `arcx run` on one long ARC prompt, per attention implementation, as a table.

    python bench/long_prompt_memory.py                 # reference (the materialised baseline) vs blocked
    python bench/long_prompt_memory.py --impls blocked --grid 20

Workload: one synthetic ARC task of ``--grid`` x ``--grid`` grids (3 train pairs and a
test pair, random colours, seeded), which the default encoder and the tiny tokenizer turn
into one prompt of about 8,300 tokens at 30x30; a random 2-layer Qwen2 with 16 heads
(d_model 512) made locally; maxSeqLen 8192 + 512 so nothing is skipped; capture of
``resid_post`` at both layers, fp32. Each implementation runs as its own `arcx run`
process on a fresh store (``engine.attention`` forces it), and the table gives that
process's own peak RSS (``ru_maxrss`` from ``wait4``), its wall time and the prompt length read
from the store. The reference path holds [heads, T, T] fp32 scores and probabilities per
layer, which is what the blocked path exists to avoid.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

# The `arcx` entry point installed beside this interpreter (the venv's).
ARCX = str(Path(sys.executable).with_name("arcx"))


def synthetic_task(size: int, seed: int) -> dict:
    rng = random.Random(seed)

    def grid() -> list[list[int]]:
        return [[rng.randrange(10) for _ in range(size)] for _ in range(size)]

    return {
        "train": [{"input": grid(), "output": grid()} for _ in range(3)],
        "test": [{"input": grid(), "output": grid()}],
    }


def run_one(work: Path, impl: str, model: Path, tasks: Path, max_seq_len: int) -> dict:
    out = work / f"store-{impl}"
    cfg = {
        "model": {"source": str(model), "dtype": "float32"},
        "dataset": {"source": str(tasks)},
        "extraction": {"layers": [0, 1], "sites": ["resid_post"], "dtype": "float32"},
        "batching": {"tokensPerBatch": max_seq_len, "maxSeqLen": max_seq_len},
        "engine": {"attention": impl},
        "output": {"uri": str(out), "unitSize": 1},
    }
    path = work / f"job-{impl}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "ARCX_LOG_FORMAT": "json", "JAX_PLATFORMS": "cpu"}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [ARCX, "run", "--config", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    # wait4 gives this child's own rusage, so each row's peak is its own process's
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    peak_kib = usage.ru_maxrss
    if proc.returncode != 0:
        return {"impl": impl, "error": err.strip().splitlines()[-1:]}
    inspect = subprocess.run(
        [ARCX, "inspect", str(out), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    facts = json.loads(inspect.stdout)
    return {
        "impl": impl,
        "tokens": facts.get("tokens"),
        "peak_gib": peak_kib / 2**20,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--grid", type=int, default=30)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--hidden-size", type=int, default=512)
    ap.add_argument("--impls", nargs="+", default=["blocked", "reference"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="arcx-longmem-") as tmp:
        work = Path(tmp)
        model = work / "model"
        subprocess.run(
            [
                ARCX,
                "make-tiny-model",
                str(model),
                "--num-layers",
                "2",
                "--num-heads",
                str(args.heads),
                "--num-kv-heads",
                str(args.heads),
                "--hidden-size",
                str(args.hidden_size),
            ],
            check=True,
            capture_output=True,
        )
        tasks = work / "tasks"
        tasks.mkdir()
        (tasks / "synthetic.json").write_text(json.dumps(synthetic_task(args.grid, 0)))
        rows = [run_one(work, impl, model, tasks, 8192 + 512) for impl in args.impls]
    print(describe())
    print(
        f"one ARC prompt of {args.grid}x{args.grid} grids, 2 layers, {args.heads} heads, "
        f"d_model {args.hidden_size}, fp32; `arcx run` per attention implementation"
    )
    print(f"{'attention':<11} {'tokens':>7} {'peak RSS GiB':>13} {'wall s':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['impl']:<11} failed: {r['error']}")
            continue
        print(f"{r['impl']:<11} {r['tokens']:>7} {r['peak_gib']:>13.2f} {r['wall_s']:>8.1f}")


if __name__ == "__main__":
    main()
