"""Fixtures for the SAE loader and export tests: stores built by tests/sae/stores.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.sae.stores import BuiltStore, build_store, tokenizer_dir

# Nothing may come from a hub at test time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tokenizer_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> BuiltStore:
    """Six units of two hosts each; all committed. Read-only for the tests that use it."""
    return build_store(tmp_path_factory.mktemp("s"), model_source=str(model_dir))


@pytest.fixture(scope="session")
def big_store(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> BuiltStore:
    """24 units, for the mixing statistics."""
    return build_store(
        tmp_path_factory.mktemp("big"),
        model_source=str(model_dir),
        units=24,
        hosts=2,
        seqs_per_part=4,
        seq_len=(40, 80),
        sites=("resid_post",),
        layers=(3,),
    )
