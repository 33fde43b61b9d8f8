"""Model sources: a gs:// source never writes outside the model cache, a cached file is reused
only while it is the same object generation (not merely the same size), and hf:// takes Hub
ids only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arcx.model.errors import ModelLoadError
from arcx.model.sources import gcs_cache_dir, gcs_records_dir, resolve_model_dir


@pytest.mark.parametrize(
    ("bucket", "prefix"),
    [
        ("b", "x"),  # too short a bucket name
        ("models", "../../etc"),
        ("models", "a/../../.."),
        ("models", "a//b"),
        ("models", "./a"),
        ("..", "x"),
        ("Models", "x"),
        ("models", "a\\..\\b"),
    ],
)
def test_cache_dir_refuses_names_that_leave_it(tmp_path: Path, bucket: str, prefix: str) -> None:
    with pytest.raises(ModelLoadError):
        gcs_cache_dir(tmp_path, bucket, prefix)


def test_cache_dir_of_a_good_name_is_inside_the_root(tmp_path: Path) -> None:
    d = gcs_cache_dir(tmp_path, "my-models.v2", "qwen/tiny-0.5b")
    assert d == tmp_path / "gs" / "my-models.v2" / "qwen" / "tiny-0.5b"


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ARCX_MODEL_CACHE", str(root))
    return root


@pytest.mark.gcs
@pytest.mark.parametrize("source", ["gs://models/../../escape", "gs://models/a/../../../escape"])
def test_traversing_gs_source_writes_nothing_outside_the_cache(
    gcs_client, cache: Path, tmp_path: Path, source: str
) -> None:
    bucket = gcs_client.create_bucket("models")
    bucket.blob("../../escape/config.json").upload_from_string(b"{}")
    before = {p for p in tmp_path.rglob("*") if "cache" not in p.parts}
    with pytest.raises(ModelLoadError):
        resolve_model_dir(source)
    after = {p for p in tmp_path.rglob("*") if "cache" not in p.parts}
    assert after == before
    assert not (tmp_path / "escape").exists()


@pytest.mark.gcs
def test_an_overwritten_object_of_the_same_size_is_downloaded_again(
    gcs_client, cache: Path
) -> None:
    bucket = gcs_client.create_bucket("models")
    bucket.blob("tiny/config.json").upload_from_string(b'{"v": 1}')
    bucket.blob("tiny/tokenizer.json").upload_from_string(b"tok-A")
    first = resolve_model_dir("gs://models/tiny")
    assert (first / "config.json").read_bytes() == b'{"v": 1}'
    bucket.blob("tiny/config.json").upload_from_string(b'{"v": 2}')  # same size, new generation
    second = resolve_model_dir("gs://models/tiny")
    assert second == first
    assert (second / "config.json").read_bytes() == b'{"v": 2}'
    records = gcs_records_dir(cache, "models", "tiny")
    record = json.loads((records / "config.json.json").read_text())
    assert record["generation"] == str(bucket.get_blob("tiny/config.json").generation)


@pytest.mark.gcs
def test_a_cached_file_without_its_record_or_tampered_is_replaced(gcs_client, cache: Path) -> None:
    bucket = gcs_client.create_bucket("models")
    bucket.blob("tiny/config.json").upload_from_string(b'{"v": 1}')
    d = resolve_model_dir("gs://models/tiny")
    record = gcs_records_dir(cache, "models", "tiny") / "config.json.json"
    (d / "config.json").write_bytes(b'{"v": 9}')  # same size, edited in the cache
    record.unlink()
    assert (resolve_model_dir("gs://models/tiny") / "config.json").read_bytes() == b'{"v": 1}'
    record.write_text("[not a record")
    (d / "config.json").write_bytes(b'{"v": 8}')
    assert (resolve_model_dir("gs://models/tiny") / "config.json").read_bytes() == b'{"v": 1}'


@pytest.mark.gcs
def test_a_file_the_bucket_no_longer_has_leaves_the_cache(gcs_client, cache: Path) -> None:
    """A stale index.json beside a new single-file checkpoint would load the wrong shards."""
    bucket = gcs_client.create_bucket("models")
    bucket.blob("m/config.json").upload_from_string(b"{}")
    bucket.blob("m/model.safetensors.index.json").upload_from_string(b'{"weight_map": {}}')
    d = resolve_model_dir("gs://models/m")
    assert (d / "model.safetensors.index.json").exists()
    bucket.blob("m/model.safetensors.index.json").delete()
    resolve_model_dir("gs://models/m")
    assert not (d / "model.safetensors.index.json").exists()
    assert not list(d.glob(".*.partial"))


@pytest.mark.parametrize(
    "source", ["hf://../..", "hf://org/..", "hf://a--b/c", "hf://org/na me", "hf://./x"]
)
def test_hf_model_source_must_be_a_hub_id(source: str) -> None:
    from arcx.model.sources import parse_hf

    with pytest.raises(ModelLoadError, match="hf://"):
        parse_hf(source)
