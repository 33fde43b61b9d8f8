"""How close arcx is to transformers' PyTorch models (fp32 reference), in fp32 and bf16.

    python bench/parity.py [--seq 32]

For random tiny checkpoints of the test shapes (Qwen2, Qwen3, Llama), runs 2 x SEQ random
tokens through
transformers in fp32 (forward hooks give every site at every layer) and through arcx in
float32 and bfloat16, and prints the largest absolute error over all activations, that
error relative to the site's largest magnitude, the largest logit error, and how often
the argmax token agrees. docs/model.md quotes this table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import jax
import numpy as np
import torch
from transformers import AutoModelForCausalLM

from arcx.model import SITES, Capture, forward, load_model, make_mesh
from arcx.model.tiny import make_tiny_model

SHAPES = {
    "tied_gqa2": {},
    "untied_gqa4_theta1e6": dict(
        hidden_size=96, num_layers=3, num_heads=8, num_kv_heads=2, intermediate_size=160,
        tie_word_embeddings=False, rope_theta=1_000_000.0, seed=1,
    ),
    "tied_gqa3_theta100": dict(
        hidden_size=96, num_layers=2, num_heads=6, num_kv_heads=2, intermediate_size=64,
        rope_theta=100.0, seed=2,
    ),
    "qwen3_qknorm_hd32": dict(model_type="qwen3", seed=4),
    "llama_llama3rope_untied": dict(model_type="llama", tie_word_embeddings=False, seed=5),
}  # fmt: skip


def reference(path: Path, ids: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()
    acts: dict[str, np.ndarray] = {}

    def keep(name: str, take):
        return lambda _m, args, out=None: acts.__setitem__(name, take(args, out).detach().numpy())

    hooks = []
    for i, layer in enumerate(model.model.layers):
        hooks += [
            layer.register_forward_pre_hook(keep(f"resid_pre.{i}", lambda a, o: a[0])),
            layer.register_forward_hook(keep(f"resid_post.{i}", lambda a, o: o)),
            layer.self_attn.register_forward_hook(keep(f"attn_out.{i}", lambda a, o: o[0])),
            layer.post_attention_layernorm.register_forward_pre_hook(
                keep(f"resid_mid.{i}", lambda a, o: a[0])
            ),
            layer.mlp.register_forward_hook(keep(f"mlp_out.{i}", lambda a, o: o)),
        ]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ids, dtype=torch.long)).logits.numpy()
    for h in hooks:
        h.remove()
    return acts, logits


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seq", type=int, default=32, help="tokens per row (2 rows)")
    args = p.parse_args()
    step = jax.jit(forward, static_argnums=3)
    print(
        "| shape | arcx dtype | max abs err, activations | relative to site max | max abs err, logits | max abs logit | argmax agreement |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in SHAPES.items():
            path = make_tiny_model(Path(tmp) / name, **kw)
            ids = np.random.default_rng(9).integers(3, 590, (2, args.seq)).astype(np.int32)
            ref, ref_logits = reference(path, ids)
            for dtype in ("float32", "bfloat16"):
                lm = load_model(str(path), mesh=make_mesh(), dtype=dtype)
                cap = Capture(SITES, tuple(range(lm.config.num_hidden_layers)))
                out = step(lm.model, ids, np.ones_like(ids), cap)
                got = {k: np.asarray(v, np.float32) for k, v in out.activations.items()}
                err = max(np.abs(got[k] - v).max() for k, v in ref.items())
                rel = max(np.abs(got[k] - v).max() / np.abs(v).max() for k, v in ref.items())
                logits = np.asarray(out.logits)
                lerr = np.abs(logits - ref_logits).max()
                agree = (logits.argmax(-1) == ref_logits.argmax(-1)).mean()
                print(
                    f"| {name} | {dtype} | {err:.1e} | {rel:.1e} | {lerr:.1e} | "
                    f"{np.abs(ref_logits).max():.1f} | {agree:.1%} |"
                )


if __name__ == "__main__":
    main()
