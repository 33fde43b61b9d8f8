"""``arcx make-tiny-model DIR``: write the embedded default model (a random tiny decoder + tokenizer)."""

from __future__ import annotations

import argparse

from arcx.model.config import FAMILIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-tiny-model",
        help="write a small random Qwen2, Qwen3 or Llama and its tokenizer in Hugging Face layout",
        description="Write config.json, model.safetensors, generation_config.json and a tiny "
        "tokenizer into DIR. Made locally; nothing is downloaded.",
    )
    p.add_argument("dir", help="output directory (created if missing)")
    p.add_argument(
        "--model-type",
        "--family",
        dest="model_type",
        default="qwen2",
        choices=list(FAMILIES),
        help="the model family (config.json's model_type); default qwen2",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--num-heads", type=int, default=4)
    p.add_argument("--num-kv-heads", type=int, default=2)
    p.add_argument("--intermediate-size", type=int, default=128)
    p.add_argument(
        "--untied", action="store_true", help="a separate lm_head instead of tied embeddings"
    )
    p.add_argument(
        "--rope-theta", type=float, help="default: 1e4 (qwen2), 1e6 (qwen3), llama3 scaling (llama)"
    )
    p.add_argument("--head-dim", type=int, help="default: hidden / heads (qwen3: 32)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from arcx.model.tiny import make_tiny_model

    out = make_tiny_model(
        args.dir,
        model_type=args.model_type,
        seed=args.seed,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        num_kv_heads=args.num_kv_heads,
        intermediate_size=args.intermediate_size,
        tie_word_embeddings=not args.untied,
        rope_theta=args.rope_theta,
        head_dim=args.head_dim,
    )
    print(f"wrote a tiny {FAMILIES[args.model_type].architecture} to {out}")
    return 0
