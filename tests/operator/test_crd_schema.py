"""The CRD cannot drift from the job config model.

- the committed CRD (manifests/ and the chart) is exactly what hack/gen-crd.py generates;
- every shared spec section has JobConfig's field names, required fields, enums, bounds and
  defaults, read here straight from the pydantic model (not from its JSON schema);
- every sample is accepted by the CRD's structural schema (a small OpenAPI validator below;
  CEL rules are checked by a real API server in test_crd_validation.py).
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import annotated_types
import pytest
import yaml
from op_helpers import (
    CHART_DIR,
    CONFIG_RULE_MIRRORS,
    CRD_PATH,
    REPO,
    load_sample,
    sample_paths,
    with_values,
)
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from arcx.config import ConfigError, JobConfig, parse_config
from arcx_operator import tpu
from arcx_operator.crd import build_crd
from arcx_operator.render import job_config
from arcx_operator.spec import SHARED_SECTIONS, parse_spec

GENERATED = build_crd(JobConfig.model_json_schema(by_alias=True))


def _committed(path: Any) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


@pytest.mark.parametrize("path", [CRD_PATH, CHART_DIR / "crds" / CRD_PATH.name])
def test_committed_crd_is_generated(path: Any) -> None:
    assert _committed(path) == GENERATED, f"{path} is stale: run .venv/bin/python hack/gen-crd.py"


def _model(annotation: Any) -> type[BaseModel]:
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel), annotation
    return annotation


def _literal_values(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return None


def _check_model(model: type[BaseModel], schema: dict[str, Any], where: str) -> None:
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    assert set(schema["properties"]) == set(fields), f"{where}: field names differ"
    required = {a for a, f in fields.items() if f.is_required()}
    assert set(schema.get("required", [])) == required, f"{where}: required fields differ"
    for alias, field in fields.items():
        prop = schema["properties"][alias]
        at = f"{where}.{alias}"
        ann = field.annotation
        if typing.get_origin(ann) in (typing.Union, types.UnionType):
            ann = next(a for a in typing.get_args(ann) if a is not type(None))
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            assert prop["type"] == "object", at
            _check_model(ann, prop, at)
        elif typing.get_origin(ann) is list:
            (item,) = typing.get_args(ann)
            assert prop["type"] == "array", at
            values = _literal_values(item)
            if values is not None:
                assert prop["items"]["enum"] == values, at
            else:
                assert prop["items"]["type"] == {int: "integer", str: "string"}[item], at
        elif (values := _literal_values(ann)) is not None:
            assert prop["enum"] == values, f"{at}: enum differs"
        else:
            assert prop["type"] == {int: "integer", str: "string", bool: "boolean"}[ann], at
        for meta in field.metadata:
            if isinstance(meta, annotated_types.Ge):
                assert prop["minimum"] == meta.ge, f"{at}: minimum differs"
            elif isinstance(meta, annotated_types.Le):
                assert prop["maximum"] == meta.le, f"{at}: maximum differs"
            elif isinstance(meta, annotated_types.MinLen):
                assert prop["minItems"] == meta.min_length, f"{at}: minItems differs"
        bounds = {"minimum", "maximum", "minItems"} & set(prop)
        declared = {
            {
                annotated_types.Ge: "minimum",
                annotated_types.Le: "maximum",
                annotated_types.MinLen: "minItems",
            }[type(m)]
            for m in field.metadata
            if type(m) in (annotated_types.Ge, annotated_types.Le, annotated_types.MinLen)
        }
        assert bounds == declared, (
            f"{at}: bounds in the CRD but not in JobConfig: {bounds - declared}"
        )
        if field.default is not PydanticUndefined and field.default is not None:
            default = field.default
            if isinstance(default, BaseModel):
                default = default.model_dump(mode="json", by_alias=True)
            assert prop.get("default") == default, f"{at}: default differs"


@pytest.mark.parametrize("section", SHARED_SECTIONS)
def test_shared_section_matches_job_config(section: str) -> None:
    schema = _spec_schema(_committed(CRD_PATH))["properties"][section]
    field = JobConfig.model_fields[section]
    _check_model(_model(field.annotation), schema, f"spec.{section}")
    assert ("default" in schema) == (not field.is_required()), f"spec.{section}: default differs"


def test_the_crd_lists_every_job_config_section_but_parallelism() -> None:
    # parallelism.slices is derived from the topology, so the CR never sets it directly.
    assert set(JobConfig.model_fields) - set(SHARED_SECTIONS) == {"parallelism"}


def _walk(schema: dict[str, Any], path: str = "spec") -> list[str]:
    missing = [] if schema.get("description") else [path]
    for name, prop in (schema.get("properties") or {}).items():
        missing += _walk(prop, f"{path}.{name}")
    return missing


def test_every_spec_field_has_a_description() -> None:
    assert _walk(_spec_schema(GENERATED)) == []


def test_model_source_names_every_supported_model_type() -> None:
    from arcx.model.config import FAMILIES

    text = _spec_schema(_committed(CRD_PATH))["properties"]["model"]["properties"]["source"]
    assert all(name in text["description"] for name in FAMILIES), text["description"]


def test_cel_rules_are_present() -> None:
    spec = _spec_schema(GENERATED)
    props = spec["properties"]
    topo_rules = [r["rule"] for r in props["topology"]["x-kubernetes-validations"]]
    assert "has(self.tpu) != has(self.cpu)" in topo_rules
    tpu_rule = props["topology"]["properties"]["tpu"]["x-kubernetes-validations"][0]["rule"]
    for g in tpu.GENERATIONS:
        assert f"'{g.accelerator}': [" in tpu_rule
        for t in g.single_host + g.multi_host:
            assert f"'{t}'" in tpu_rule
    for name in (*SHARED_SECTIONS, "topology"):
        rules = [r["rule"] for r in props[name].get("x-kubernetes-validations", [])]
        assert "self == oldSelf" in rules, f"spec.{name} is not immutable"
        assert name in spec["required"] or "default" in props[name], f"spec.{name} may be absent"
    assert any(
        r.get("fieldPath") == ".queueName" and "oldSelf.queueName" in r["rule"]
        for r in spec["x-kubernetes-validations"]
    )
    for name in ("suspend", "maxRestarts", "ttlSecondsAfterFinished", "image"):
        assert "x-kubernetes-validations" not in props[name], f"spec.{name} must stay mutable"


def test_printer_columns_and_names() -> None:
    version = GENERATED["spec"]["versions"][0]
    assert [col["name"] for col in version["additionalPrinterColumns"]] == [
        "Phase",
        "Progress",
        "Restarts",
        "Age",
    ]
    assert version["subresources"] == {"status": {}}
    names = GENERATED["spec"]["names"]
    assert names["shortNames"] == ["aej"] and names["categories"] == ["arcx"]


# --- a small structural-schema validator (types, enums, bounds, required, unknown fields) ---
_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    errors: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        return [] if isinstance(value, int | str) else [f"{path}: not int or string"]
    t = schema.get("type")
    if t and (not isinstance(value, _TYPES[t]) or (t == "integer" and isinstance(value, bool))):
        return [f"{path}: expected {t}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below minimum")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: above maximum")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: too long")
    if t == "array":
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 1 << 30):
            errors.append(f"{path}: item count out of bounds")
        if schema.get("x-kubernetes-list-type") == "set" and len(set(value)) != len(value):
            errors.append(f"{path}: duplicate items")
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    if t == "object":
        for req in schema.get("required", []):
            if req not in value:
                errors.append(f"{path}.{req}: required")
        props = schema.get("properties")
        for k, v in value.items():
            if props is not None and k in props:
                errors += validate(v, props[k], f"{path}.{k}")
            elif "additionalProperties" in schema:
                errors += validate(v, schema["additionalProperties"], f"{path}.{k}")
            elif props is not None and path != ".metadata":
                errors.append(f"{path}.{k}: unknown field")
    return errors


ROOT_SCHEMA = GENERATED["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("path", sample_paths(), ids=lambda p: p.name)
def test_samples_pass_the_structural_schema(path: Any) -> None:
    assert validate(yaml.safe_load(path.read_text()), ROOT_SCHEMA) == []


def test_the_validator_can_fail() -> None:
    body = load_sample("cpu-2x2.yaml")
    body["spec"]["extraction"]["sites"] = ["resid_post", "nope"]
    body["spec"]["output"]["unitSize"] = 0
    body["spec"]["model"]["typo"] = 1
    errors = validate(body, ROOT_SCHEMA)
    assert any("sites[1]" in e for e in errors)
    assert any("unitSize: below minimum" in e for e in errors)
    assert any("model.typo: unknown field" in e for e in errors)


def test_gen_crd_check_mode_agrees() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen-crd.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("case", "values", "field", "fragment"),
    CONFIG_RULE_MIRRORS,
    ids=[m[0] for m in CONFIG_RULE_MIRRORS],
)
def test_each_cel_mirror_is_a_rule_of_the_job_config(
    case: str, values: dict[str, Any], field: str, fragment: str
) -> None:
    """The pod refuses (exit 78) what the CRD's CEL refuses, with the same words; the rule
    is in the generated CRD on the section the field belongs to."""
    spec = with_values(load_sample("cpu-2x2.yaml")["spec"], values)
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        parse_config(job_config(parse_spec(spec)))
    section = field.split(".")[1]
    rules = _spec_schema(GENERATED)["properties"][section]["x-kubernetes-validations"]
    assert any(fragment in r["message"] for r in rules), f"no CEL rule on spec.{section}"
    parse_config(job_config(parse_spec(load_sample("cpu-2x2.yaml")["spec"])))  # the base is fine
