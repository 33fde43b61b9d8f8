"""Fixtures for the data-layer tests: the tiny tokenizer (built locally) and barc-style rows."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
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
def fake_gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on a real GCS-protocol server (fake-gcs-server, built by hack/tools) on loopback."""
    proc = subprocess.run(
        [str(REPO / "hack/tools/fake-gcs-server.sh")], capture_output=True, text=True
    )
    if proc.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"fake-gcs-server could not be built: {proc.stderr[-2000:]}")
        pytest.skip(f"fake-gcs-server could not be built: {proc.stderr[-500:]}")
    binary = proc.stdout.strip().splitlines()[-1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
         "-public-host", f"127.0.0.1:{port}", "-log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(
            project="arcx-local",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
        client.create_bucket("tasks-test")
        yield "gs://tasks-test"
    finally:
        server.terminate()
        server.wait(10)
