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
