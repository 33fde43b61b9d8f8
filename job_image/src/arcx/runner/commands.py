"""Registers `arcx run`, `arcx verify`, `arcx inspect` and `arcx demo`."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one process of an extraction job (see docs/runner.md)")
    p.add_argument("--config", required=True, help="job configuration YAML (see arcx.config)")
    p.add_argument(
        "--verify-on-resume",
        action="store_true",
        help="on resume, also compare every committed byte's sha256 (reads the whole store); "
        "without it committed units are checked by marker, sizes and backend checksums",
    )
    p.set_defaults(func=_run)

    p = sub.add_parser("verify", help="check that every unit of a store is committed and intact")
    p.add_argument("store", help="activation store: a path or gs://bucket/prefix")
    p.add_argument("--sizes-only", action="store_true", help="check sizes, skip reading for sha256")
    p.set_defaults(func=_verify)

    p = sub.add_parser("inspect", help="summarise an activation store")
    p.add_argument("store", help="activation store: a path or gs://bucket/prefix")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_inspect)

    p = sub.add_parser("demo", help="tiny model + bundled ARC tasks, end to end on CPU")
    p.add_argument("--workdir", default=None, help="where to put the model, tasks and store")
    p.add_argument("--tasks", type=int, default=32, help="how many ARC training tasks")
    p.add_argument("--processes", type=int, default=2, help="local processes (jax.distributed)")
    p.set_defaults(func=_demo)


def _run(args: argparse.Namespace) -> int:
    from arcx import exitcodes
    from arcx.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"arcx run: {err}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    from arcx.runner.run import run_job

    return run_job(config, verify_on_resume=args.verify_on_resume)


def _verify(args: argparse.Namespace) -> int:
    from arcx_store.backends import StorageError, open_storage

    from arcx.runner.progress import tracked
    from arcx.runner.verify import format_report, verify_store

    try:
        storage = open_storage(args.store)
        with tracked("verify", total=None, unit="units") as bar:
            report = verify_store(
                storage,
                check_hashes=not args.sizes_only,
                progress=lambda done, total: bar.update(done - bar.n, total=total),
            )
            bar.update(report.units_total - bar.n)
    except StorageError as err:
        print(f"arcx verify: {err}", file=sys.stderr)
        return 1
    print(format_report(storage.uri, report))
    return 0 if report.ok else 1


def _inspect(args: argparse.Namespace) -> int:
    import json

    from arcx_store.backends import NotFound, StorageError, open_storage

    from arcx.runner.inspect_store import format_summary, summarize_store, summary_json
    from arcx.runner.manifest import StoreMismatch

    try:
        summary = summarize_store(open_storage(args.store))
    except NotFound as err:
        print(f"arcx inspect: not an arcx store: {err}", file=sys.stderr)
        return 1
    except (StorageError, StoreMismatch) as err:
        print(f"arcx inspect: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary_json(summary), indent=2, sort_keys=True))
    else:
        print(format_summary(summary))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from arcx.runner.demo import run_demo

    return run_demo(args.workdir, num_tasks=args.tasks, processes=args.processes)
