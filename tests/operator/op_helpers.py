"""Shared helpers for the operator tests: samples, bodies as the API server would hold them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO / "manifests" / "samples"
CRD_PATH = REPO / "manifests" / "crd" / "arcextractionjobs.arcx.dev.yaml"
CHART_DIR = REPO / "charts" / "arcx"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def sample_paths() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*.yaml"))


def load_sample(name: str) -> dict[str, Any]:
    return yaml.safe_load((SAMPLES_DIR / name).read_text())


def as_stored(
    body: dict[str, Any], namespace: str = "research", uid: str = "0000-uid"
) -> dict[str, Any]:
    """The body with the metadata the API server adds (namespace, uid, generation)."""
    out = copy.deepcopy(body)
    meta = out.setdefault("metadata", {})
    meta.setdefault("namespace", namespace)
    meta.setdefault("uid", uid)
    meta.setdefault("generation", 1)
    return out


class _LiteralDumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)


def dump(obj: Any) -> str:
    """YAML with multi-line strings (the ConfigMap's job.yaml) as readable blocks."""
    return yaml.dump(obj, Dumper=_LiteralDumper, sort_keys=False, width=100)


# Static rules of arcx.config that the CRD restates in CEL: (id, {spec path: value}, the
# field the API server names, a fragment both the API server and parse_config say).
# test_crd_validation.py sends each to a real API server; test_crd_schema.py to parse_config.
CONFIG_RULE_MIRRORS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "answer-positions-without-teacher-forcing",
        {"extraction.positions": "answer", "extraction.teacherForcing": False},
        "spec.extraction.positions",
        "needs teacherForcing: true",
    ),
    (
        "scoring-without-teacher-forcing",
        {"extraction.scoring": True, "extraction.teacherForcing": False},
        "spec.extraction.scoring",
        "scoring: true needs teacherForcing: true",
    ),
    ("empty-output-uri", {"output.uri": "  "}, "spec.output.uri", "must not be empty"),
    ("s3-output-uri", {"output.uri": "s3://bucket/x"}, "spec.output.uri", "unsupported URI"),
    (
        "tokens-per-batch-below-max-seq-len",
        {"batching.tokensPerBatch": 1024, "batching.maxSeqLen": 2048},
        "spec.batching.tokensPerBatch",
        "tokensPerBatch must be >= maxSeqLen",
    ),
]


def with_values(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with each dotted path set."""
    out = copy.deepcopy(spec)
    for path, value in values.items():
        node = out
        *parents, last = path.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = value
    return out
