"""Registers `arcx report` (see docs/plan-report.md)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="an HTML page of captioned plots of an activation store")
    p.add_argument("store", help="activation store: a path or gs://bucket/prefix")
    p.add_argument("--out", required=True, help="folder for index.html and its PNG plots")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=20000,
        help="tokens sampled per site and layer for the activation plots (default 20000)",
    )
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from arcx_store.backends import StorageError

    from arcx import exitcodes
    from arcx.sae.parts import SaeDataError

    try:
        import matplotlib  # noqa: F401 - only to say what is missing, before any work
    except ImportError as err:
        print(
            f"arcx report: needs matplotlib ({err.name} is missing): pip install 'arcx[report]'",
            file=sys.stderr,
        )
        return exitcodes.CONFIG_ERROR
    from arcx.report.data import gather
    from arcx.report.render import figures, page

    out = Path(args.out)
    try:
        data = gather(args.store, max_tokens_per_site=args.max_tokens)
    except (SaeDataError, StorageError) as err:
        print(f"arcx report: {err}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    figs = figures(data, out)
    (out / "index.html").write_text(page(data, figs))
    print(f"arcx report: {out / 'index.html'} ({len(figs)} plots)")
    return exitcodes.OK
