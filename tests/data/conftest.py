"""Fixtures for the data-layer tests: the tiny tokenizer (built locally) and barc-style rows."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Nothing may come from a hub at test time: make the datasets/huggingface libraries refuse.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from arcx.prompts.tiny_tokenizer import build_tiny_tokenizer

    out = tmp_path_factory.mktemp("tiny-tokenizer")
    build_tiny_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def make_barc_row(seed: int, n_examples: int = 5, size: int = 3) -> dict:
    """A well-formed barc-style row whose grids depend on ``seed``."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n_examples):
        grid_in = [[rng.randrange(10) for _ in range(size)] for _ in range(size)]
        grid_out = [[(v + 1) % 10 for v in row] for row in grid_in]
        examples.append([grid_in, grid_out])
    return {
        "examples": examples,
        "source": f"# concepts: shift colours\n# description: row {seed}\ndef main(x): ...",
        "seeds": [f"seed{seed}"],
    }


@pytest.fixture
def barc_row():
    """``barc_row(seed, n_examples=5, size=3)`` builds a well-formed barc-style row."""
    return make_barc_row


@pytest.fixture
def fake_gcs(gcs_client) -> str:
    """A bucket on the real GCS-protocol server of the root ``gcs_client`` fixture."""
    gcs_client.create_bucket("tasks-test")
    return "gs://tasks-test"
