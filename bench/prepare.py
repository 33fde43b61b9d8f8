"""Benchmark `arcx prepare` on synthetic barc-style JSONL: rows/s and peak RSS.

    python bench/prepare.py                       # 20,000 and 200,000 rows
    python bench/prepare.py --sizes 200000 --keep /tmp/bench

Each size gets its own JSONL file (about 1% broken rows and 1% duplicates, 4 to 8 examples
a row, grids 3..12 cells a side) and is prepared in a fresh child process, whose peak RSS
(VmHWM: ru_maxrss would carry the parent's over exec) is reported: if memory is bounded it barely moves between sizes. Rows per
CPU second are shown beside rows per wall second because a shared machine's wall clock
says more about the neighbours than about prepare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_model

CHILD = """
import json, sys, time
from arcx.tasks.prepare import prepare
t0, c0 = time.perf_counter(), time.process_time()
s = prepare(sys.argv[1], sys.argv[2])
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "rows": s.rows_read, "tasks": s.tasks_written,
                  "rejected": s.rejected, "duplicates": s.duplicates, "shards": s.shards,
                  "maxrss_kib": next(int(l.split()[1]) for l in open("/proc/self/status")
                                     if l.startswith("VmHWM:"))}))
"""


def grid_pool(rng: random.Random, n: int) -> list[str]:
    pool = []
    for _ in range(n):
        h, w = rng.randint(3, 12), rng.randint(3, 12)
        pool.append(json.dumps([[rng.randrange(10) for _ in range(w)] for _ in range(h)]))
    return pool


def write_rows(path: Path, n_rows: int, seed: int = 0) -> None:
    """Rows from a pool of grids; the first input encodes the row number so rows differ."""
    rng = random.Random(seed)
    pool = grid_pool(rng, 4000)
    program = json.dumps(
        "# concepts: synthetic\n# description: benchmark row\ndef main(g):\n    return g\n"
    )
    with path.open("w") as f:
        for row in range(n_rows):
            if row % 100 == 37:  # a broken row: ragged grid
                f.write(
                    '{"examples": [[[[1, 2], [3]], [[1]]], [[[1]], [[1]]]], "source": "", "seeds": []}\n'
                )
                continue
            key = row - 1 if row % 100 == 59 else row  # a duplicate of the previous row
            unique = json.dumps([[int(d) for d in f"{key:07d}"]])
            r = random.Random(key)
            pairs = [f"[{unique}, {pool[r.randrange(len(pool))]}]"]
            pairs += [
                f"[{pool[r.randrange(len(pool))]}, {pool[r.randrange(len(pool))]}]"
                for _ in range(r.randint(3, 7))
            ]
            f.write(
                f'{{"examples": [{", ".join(pairs)}], "source": {program}, "seeds": ["{key}"]}}\n'
            )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="20000,200000", help="comma-separated row counts")
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="arcx-bench-prepare-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}")
    header = f"{'rows':>8} {'input MiB':>9} {'tasks':>8} {'rejected':>8} {'dups':>6} {'shards':>6} {'wall s':>7} {'rows/s':>7} {'CPU s':>6} {'rows/CPU s':>10} {'peak RSS MiB':>12}"
    print(header)
    for n in sizes:
        src = work / f"rows-{n}.jsonl"
        if not src.exists():
            write_rows(src, n)
        out = work / f"store-{n}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        res = subprocess.run(
            [sys.executable, "-c", CHILD, str(src), str(out)], capture_output=True, text=True
        )
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"{r['rows']:>8} {src.stat().st_size / 2**20:>9.0f} {r['tasks']:>8} {r['rejected']:>8} "
            f"{r['duplicates']:>6} {r['shards']:>6} {r['seconds']:>7.1f} {r['rows'] / r['seconds']:>7.0f} "
            f"{r['cpu_seconds']:>6.1f} {r['rows'] / r['cpu_seconds']:>10.0f} "
            f"{r['maxrss_kib'] / 1024:>12.0f}"
        )
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
