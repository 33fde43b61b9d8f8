"""A checkpoint's own files as hostile input: the weight map may not name files outside the
model directory, and a broken index is a ModelLoadError, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arcx.model.errors import ModelLoadError
from arcx.model.params import SafetensorsReader


def write_index(model_dir: Path, weight_map: object) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )


@pytest.mark.parametrize(
    "name",
    ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors", "..", "", "a\\b", 7],
)
def test_weight_map_names_outside_the_model_dir_are_refused(tmp_path: Path, name: object) -> None:
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")  # a valid, empty safetensors file
    write_index(tmp_path / "model", {"model.embed_tokens.weight": name})
    with pytest.raises(ModelLoadError, match=r"shard name|not a safetensors index"):
        SafetensorsReader.from_dir(tmp_path / "model")


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        '{"weight_map": [1]}',
        '{"weight_map": {"a": ["x"]}}',
        '{"no_map": {}}',
        "{not json",
        "[" * 100_000,
    ],
)
def test_broken_index_files_are_a_load_error(tmp_path: Path, text: str) -> None:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.safetensors.index.json").write_text(text)
    with pytest.raises(ModelLoadError, match="not a safetensors index"):
        SafetensorsReader.from_dir(d)


def test_plain_shard_names_still_load(tmp_path: Path) -> None:
    d = tmp_path / "model"
    write_index(d, {"x": "model-00001-of-00001.safetensors"})
    (d / "model-00001-of-00001.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    assert SafetensorsReader.from_dir(d).names() == set()


def _safetensors(length: int, header: bytes, data: bytes = b"") -> bytes:
    return length.to_bytes(8, "little") + header + data


@pytest.mark.parametrize(
    "content",
    [
        _safetensors(2**63 - 1, b"{}"),  # would ask read() for 8 EiB
        _safetensors(2**64 - 1, b"{}"),
        _safetensors(100_000_001, b"{}"),  # over safetensors' own 100 MB header limit
        _safetensors(50, b"{}"),  # past the end of the file
        _safetensors(2, b"[]"),  # a header that is not an object
        _safetensors(4, b'{"a"'),
        _safetensors(11, b'{"t": 1.5}'),
        b"\x01\x02",
    ],
)
def test_a_hostile_safetensors_header_is_a_load_error(tmp_path: Path, content: bytes) -> None:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelLoadError, match=r"model\.safetensors"):
        SafetensorsReader.from_dir(d)
