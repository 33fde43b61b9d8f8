"""Registers `arcx plan` (see docs/plan-report.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arcx.config import JobConfig
    from arcx.planning.estimate import Plan


def register(sub: argparse._SubParsersAction) -> None:
    from arcx.planning.accelerators import DEFAULT_MFU
    from arcx.planning.collect import DEFAULT_MAX_TASKS_READ

    p = sub.add_parser(
        "plan",
        help="what a job will read, keep, write and cost, before it runs",
        description="Builds the job's prompts with its real tokenizer over its real dataset "
        "(a random sample for large ones), batches them with the runner's planner, and prints "
        "counts, bytes, FLOPs and time per accelerator.",
    )
    p.add_argument("--config", required=True, help="job configuration YAML (as for arcx run)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_MAX_TASKS_READ,
        metavar="N",
        help=f"build prompts for at most N tasks, chosen at random (default "
        f"{DEFAULT_MAX_TASKS_READ}); totals are scaled up and their error stated",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument(
        "--mfu",
        type=float,
        default=DEFAULT_MFU,
        help=f"assumed model FLOP/s utilisation (default {DEFAULT_MFU})",
    )
    p.add_argument(
        "--chips",
        type=int,
        default=8,
        help="chips the job runs on (default 8): wall time, and chips / mesh.model data shards "
        "for batching",
    )
    p.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    from arcx import exitcodes
    from arcx.config import ConfigError, load_config

    if args.sample < 1 or args.chips < 1 or not 0 < args.mfu <= 1:
        print("arcx plan: --sample and --chips must be >= 1, --mfu in (0, 1]", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    try:
        config = load_config(args.config)
        plan = _make_plan(config, args)
    except ConfigError as err:
        print(f"arcx plan: {err}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    from arcx.planning.estimate import format_plan

    print(json.dumps(plan.to_json(), indent=2, sort_keys=True) if args.json else format_plan(plan))
    return exitcodes.OK


def _make_plan(config: JobConfig, args: argparse.Namespace) -> Plan:
    from arcx.planning.collect import batcher, collect_sample, job_shape, model_files
    from arcx.planning.estimate import build_plan
    from arcx.runner.progress import tracked
    from arcx.runner.run import open_dataset

    shape, tokenizer = model_files(config)
    store = open_dataset(config)
    job = job_shape(config)
    with tracked("plan", total=min(args.sample, int(store.num_tasks)), unit="tasks") as bar:
        sample = collect_sample(
            config,
            store,
            tokenizer,
            max_tasks_read=args.sample,
            seed=args.seed,
            on_task=bar.update,
        )
    return build_plan(
        sample,
        shape,
        job,
        batcher(config, job.packed, max(1, args.chips // config.mesh.model)),
        mfu=args.mfu,
        chips=args.chips,
    )
