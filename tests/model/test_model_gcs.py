"""gs:// model sources against a real GCS-protocol server (fake-gcs-server on loopback)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from arcx.model import ModelLoadError, load_model, make_mesh

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.gcs


@pytest.fixture(autouse=True)
def _model_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARCX_MODEL_CACHE", str(tmp_path / "cache"))


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
