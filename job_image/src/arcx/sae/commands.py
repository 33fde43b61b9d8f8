"""Registers `arcx export-saelens` and `arcx sae-batches` (see docs/sae.md)."""

from __future__ import annotations

import argparse
import json
import sys


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="activation store: a path or gs://bucket/prefix")
    p.add_argument("--site", default="resid_post", help="recorded site (default resid_post)")
    p.add_argument("--layer", type=int, required=True, help="recorded layer")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    special = p.add_mutually_exclusive_group()
    special.add_argument(
        "--exclude-token-ids",
        default=None,
        metavar="IDS",
        help="comma-separated token ids to drop (default: the special tokens of the "
        "tokenizer at the manifest's model source, when it is a local folder)",
    )
    special.add_argument(
        "--tokenizer",
        default=None,
        metavar="DIR",
        help="drop the special tokens of DIR/tokenizer.json",
    )
    special.add_argument("--keep-special-tokens", action="store_true", help="drop nothing")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of each part")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-saelens",
        help="write one site/layer as the datasets folder SAELens trains from (cached activations)",
    )
    _common(p)
    p.add_argument("--out", required=True, help="new, empty output folder")
    p.add_argument("--context-size", type=int, default=128, help="tokens per row (default 128)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    p.add_argument(
        "--no-shuffle",
        action="store_true",
        help="keep store order (sequences packed in order) instead of shuffling tokens globally",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "sae-batches", help="print the shapes and statistics of a few loader batches"
    )
    _common(p)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--n", type=int, default=3, help="how many batches (default 3)")
    p.add_argument("--buffer-tokens", type=int, default=None, help="shuffle buffer rows")
    p.set_defaults(func=_batches)


def _excluded(args: argparse.Namespace) -> list[int] | None:
    from arcx.sae.special_tokens import parse_id_list, special_token_ids

    if args.keep_special_tokens:
        return []
    if args.tokenizer:
        return special_token_ids(args.tokenizer)
    if args.exclude_token_ids is not None:
        return parse_id_list(args.exclude_token_ids)
    return None


def _export(args: argparse.Namespace) -> int:
    from arcx_store.backends import StorageError

    from arcx.runner.progress import tracked
    from arcx.sae.export import export_saelens
    from arcx.sae.parts import SaeDataError

    try:
        with tracked("export", total=None, unit="rows") as bar:
            report = export_saelens(
                args.store,
                args.out,
                site=args.site,
                layer=args.layer,
                context_size=args.context_size,
                seed=args.seed,
                shuffle=not args.no_shuffle,
                exclude_token_ids=_excluded(args),
                dtype=args.dtype,
                verify_checksums=not args.no_verify,
                progress=lambda tokens: bar.update(1, tokens=tokens),
            )
    except (SaeDataError, StorageError, ValueError) as err:
        print(f"arcx export-saelens: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {report.rows} rows x {report.context_size} tokens of {report.hook_name} "
        f"(d_in {report.d_in}, {report.dtype}) to {report.out_dir}; "
        f"{report.tokens_dropped} tail tokens dropped; "
        f"{'shuffled, seed ' + str(report.seed) if report.shuffled else 'store order'}"
    )
    print(
        "SAELens: cached_activations_path="
        + json.dumps(report.out_dir)
        + f", hook_name={json.dumps(report.hook_name)}, context_size={report.context_size}, "
        f"d_in={report.d_in}"
    )
    return 0


def _batches(args: argparse.Namespace) -> int:
    import numpy as np
    from arcx_store.backends import StorageError

    from arcx.sae.loader import DEFAULT_BUFFER_TOKENS, ActivationLoader
    from arcx.sae.parts import SaeDataError

    try:
        loader = ActivationLoader(
            args.store,
            site=args.site,
            layer=args.layer,
            batch_size=args.batch_size,
            seed=args.seed,
            exclude_token_ids=_excluded(args),
            shuffle_buffer_tokens=args.buffer_tokens
            or max(DEFAULT_BUFFER_TOKENS, 4 * args.batch_size),
            verify_checksums=not args.no_verify,
            epochs=None,
        )
        info = loader.info
        print(
            f"store {info.uri}: {info.units_committed}/{info.units_total} units committed, "
            f"{len(info.parts)} parts; {loader.tensor}, d_model {loader.d_model}; "
            f"excluding token ids {[int(i) for i in loader.excluded]}"
        )
        print("batch  rows  units  mean      std       mean_norm")
        for i, b in enumerate(loader.batches()):
            if i >= args.n:
                break
            a = b.activations
            norm = float(np.linalg.norm(a, axis=1).mean()) if len(a) else 0.0
            print(
                f"{i:<6} {len(a):<5} {len(np.unique(b.units)):<6} {float(a.mean()):<9.4f} "
                f"{float(a.std()):<9.4f} {norm:.4f}"
            )
    except (SaeDataError, StorageError, ValueError) as err:
        print(f"arcx sae-batches: {err}", file=sys.stderr)
        return 1
    return 0
