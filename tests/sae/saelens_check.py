"""Runs SAELens itself on an arcx export, in a subprocess whose PYTHONPATH holds the SAELens
overlay (``make saelens``): the test venv never imports sae_lens in-process.

``read``: iterate ``ActivationsStore`` over the export (``cached_activations_path``) as a
trainer does and write the rows it yields to ``--out`` (.npy).
``train``: train a ``StandardTrainingSAE`` with SAELens' ``SAETrainer.fit`` on that store
and print the reconstruction (MSE) loss of every step as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def activations_store(args: argparse.Namespace, batch: int) -> object:
    import torch
    from datasets import Dataset
    from sae_lens.training.activations_store import ActivationsStore

    # ActivationsStore reads the first row of a token dataset even when it uses a cache.
    tokens = Dataset.from_dict({"tokens": [[5] * args.ctx] * 4})
    return ActivationsStore(
        model=None,
        dataset=tokens,
        streaming=False,
        hook_name=args.hook,
        hook_head_index=None,
        context_size=args.ctx,
        d_in=args.d_in,
        n_batches_in_buffer=4,
        total_training_tokens=args.tokens,
        store_batch_size_prompts=2,
        train_batch_size_tokens=batch,
        prepend_bos=False,
        normalize_activations="none",
        device=torch.device("cpu"),
        dtype="float32",
        cached_activations_path=args.cache,
    )


def read(args: argparse.Namespace) -> None:
    store = activations_store(args, 32)
    rows = [store.next_batch().numpy() for _ in range(args.tokens // 32)]
    np.save(args.out, np.concatenate(rows))


def train(args: argparse.Namespace) -> None:
    import torch
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(0)
    sae = StandardTrainingSAE(
        StandardTrainingSAEConfig(d_in=args.d_in, d_sae=4 * args.d_in, l1_coefficient=1e-3)
    )
    cfg = SAETrainerConfig(
        total_training_samples=args.steps * args.batch,
        train_batch_size_samples=args.batch,
        lr=1e-3,
        lr_end=1e-3,  # constant; SAELens' runner config fills this in, the trainer's does not
        device="cpu",
    )
    trainer = SAETrainer(cfg, sae, activations_store(args, args.batch))
    losses: list[float] = []
    step = trainer.step

    def logged(batch: torch.Tensor):  # type: ignore[no-untyped-def]
        out = step(batch)
        losses.append(float(out.losses["mse_loss"]))
        return out

    trainer.step = logged  # type: ignore[method-assign]
    trainer.fit()
    print(json.dumps({"steps": trainer.n_training_steps, "mse": losses}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("read", "train"))
    p.add_argument("--cache", required=True)
    p.add_argument("--hook", required=True)
    p.add_argument("--d-in", type=int, required=True)
    p.add_argument("--ctx", type=int, required=True)
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--out", default=None)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    read(args) if args.mode == "read" else train(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
