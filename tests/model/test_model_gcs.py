"""gs:// model sources against a real GCS-protocol server (fake-gcs-server on loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest

from arcx.model import ModelLoadError, load_model, make_mesh

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.gcs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gcs_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    """A client for a fresh fake-gcs-server; STORAGE_EMULATOR_HOST points arcx at it."""
    proc = subprocess.run(
        [str(REPO / "hack/tools/fake-gcs-server.sh")], capture_output=True, text=True
    )
    if proc.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"fake-gcs-server could not be built: {proc.stderr[-2000:]}")
        pytest.skip(f"fake-gcs-server could not be built: {proc.stderr[-500:]}")
    port = _free_port()
    server = subprocess.Popen(
        [proc.stdout.strip().splitlines()[-1], "-scheme", "http", "-host", "127.0.0.1",
         "-port", str(port), "-backend", "memory", "-public-host", f"127.0.0.1:{port}",
         "-log-level", "error"],
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
        monkeypatch.setenv("ARCX_MODEL_CACHE", str(tmp_path / "cache"))
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        yield storage.Client(
            project="arcx-local",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    finally:
        server.terminate()
        server.wait(10)


def test_model_loads_from_gcs_like_from_disk(gcs_client, tiny_dir):
    bucket = gcs_client.create_bucket("models")
    for f in tiny_dir.iterdir():
        bucket.blob(f"qwen/tiny/{f.name}").upload_from_filename(str(f))
    bucket.blob("qwen/tiny/extra/unrelated.bin").upload_from_string(b"not fetched")

    remote = load_model("gs://models/qwen/tiny", mesh=make_mesh())
    local = load_model(str(tiny_dir), mesh=make_mesh())
    assert remote.config == local.config and remote.eos_token_ids == local.eos_token_ids
    assert sorted(p.name for p in remote.path.iterdir()) == sorted(
        p.name for p in tiny_dir.iterdir()
    )
    for (path, a), (_, b) in zip(
        jax.tree_util.tree_leaves_with_path(remote.model),
        jax.tree_util.tree_leaves_with_path(local.model),
        strict=True,
    ):
        np.testing.assert_array_equal(
            np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path)
        )
    assert remote.tokenizer("12\n") == local.tokenizer("12\n")

    with pytest.raises(ModelLoadError, match=r"no config\.json under that prefix"):
        load_model("gs://models/qwen/absent", mesh=make_mesh())
