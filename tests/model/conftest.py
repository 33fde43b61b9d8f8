"""Fixtures for the model tests: random tiny checkpoints of each family made locally, and helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arcx.model.tiny import make_tiny_model

# Shapes the parity tests cover: (name, make_tiny_model keyword arguments).
SHAPES = {
    # the embedded default: GQA ratio 2, tied head, default theta
    "tied_gqa2": {},
    # GQA ratio 4, untied head, a non-default rope theta (Qwen2.5's 1e6)
    "untied_gqa4_theta1e6": dict(
        hidden_size=96,
        num_layers=3,
        num_heads=8,
        num_kv_heads=2,
        intermediate_size=160,
        tie_word_embeddings=False,
        rope_theta=1_000_000.0,
        seed=1,
    ),
    # GQA ratio 3 with head_dim 16, tied, a small theta so positions matter a lot
    "tied_gqa3_theta100": dict(
        hidden_size=96,
        num_layers=2,
        num_heads=6,
        num_kv_heads=2,
        intermediate_size=64,
        rope_theta=100.0,
        seed=2,
    ),
}


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {name: make_tiny_model(root / name, **kw) for name, kw in SHAPES.items()}


# One tiny checkpoint per family (make_tiny_model's family defaults: Qwen3 with head_dim 32
# != hidden / heads, Llama with llama3 RoPE scaling), 2 layers so 8k-token rows stay fast.
FAMILY_SHAPES = {
    "qwen2": dict(model_type="qwen2", num_layers=2, rope_theta=1_000_000.0, seed=3),
    "qwen3": dict(model_type="qwen3", num_layers=2, num_heads=2, num_kv_heads=1, seed=4),
    "llama": dict(model_type="llama", num_layers=2, tie_word_embeddings=False, seed=5),
}


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("family-models")
    return {name: make_tiny_model(root / name, **kw) for name, kw in FAMILY_SHAPES.items()}


@pytest.fixture(scope="session")
def tiny_dir(tiny_dirs: dict[str, Path]) -> Path:
    return tiny_dirs["tied_gqa2"]


@pytest.fixture(scope="session")
def make_batch():
    return random_batch


def random_batch(
    vocab: int, lengths: list[int], *, side: str, seed: int = 0, pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and mask [B, max(lengths)] with each row's real tokens padded on ``side``."""
    rng = np.random.default_rng(seed)
    t = max(lengths)
    ids = np.full((len(lengths), t), pad_id, np.int32)
    mask = np.zeros((len(lengths), t), np.int32)
    for row, n in enumerate(lengths):
        real = rng.integers(3, vocab, n)
        cols = slice(0, n) if side == "right" else slice(t - n, t)
        ids[row, cols] = real
        mask[row, cols] = 1
    return ids, mask
