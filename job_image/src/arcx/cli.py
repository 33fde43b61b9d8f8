"""The `arcx` command line. Each area registers its own subcommands.

An area's ``commands`` module exposes ``register(subparsers)``; each subcommand sets
``func`` on its parser, taking the parsed namespace and returning an exit code. Heavy
imports (JAX, transformers) happen inside those functions so `arcx --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from arcx import __version__

COMMAND_MODULES = (
    "arcx.tasks.commands",
    "arcx.prompts.commands",
    "arcx.model.commands",
    "arcx.runner.commands",
    "arcx.sae.commands",
    "arcx.planning.commands",
    "arcx.report.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arcx",
        description="Run Qwen2-family models over ARC-AGI tasks and record their activations.",
    )
    parser.add_argument("--version", action="version", version=f"arcx {__version__}")
    parser.add_argument(
        "--log-format",
        choices=("auto", "human", "json"),
        default=None,
        help="progress as live bars (human) or JSON events (json); auto (the default, or "
        "$ARCX_LOG_FORMAT): bars on a terminal, JSON otherwise",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        # Every area is part of the product: a module that fails to import is a bug to see,
        # not a command to drop silently.
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.log_format:
        from arcx.runner.progress import set_log_format

        set_log_format(args.log_format)  # inherited by the processes a command starts
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
