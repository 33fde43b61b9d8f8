"""manifest.json: what a store holds and how it was made; written once, checked on resume."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from arcx.config import JobConfig
from arcx.runner import layout
from arcx.runner.plan import UnitPlan
from arcx.storage import NotFound, Storage


class StoreMismatch(Exception):
    """The store was made by another job (config, dataset or plan differ); resuming is refused."""


@dataclass(frozen=True)
class ModelFacts:
    d_model: int
    num_layers: int
    vocab_size: int
    # The tokenizer's special tokens: SAE training drops their rows (arcx.sae), and a reader
    # far from the model (gs://, hf://) can learn them here without loading the tokenizer.
    special_token_ids: tuple[int, ...] = ()


def build_manifest(
    config: JobConfig, *, dataset_fingerprint: str, plan: UnitPlan, model: ModelFacts
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict; a pure function of its inputs (no clocks)."""
    ex = config.extraction
    return {
        "formatVersion": layout.FORMAT_VERSION,
        "configHash": config.output_hash(),
        "model": {
            "source": config.model.source,
            "dtype": config.model.dtype,
            "dModel": model.d_model,
            "numLayers": model.num_layers,
            "vocabSize": model.vocab_size,
            "specialTokenIds": sorted(model.special_token_ids),
        },
        "dataset": {"source": config.dataset.source, "fingerprint": dataset_fingerprint},
        "sites": list(ex.sites),
        "layers": list(ex.layers),
        "positions": ex.positions,
        "dtype": ex.dtype,
        "dModel": model.d_model,
        "teacherForcing": ex.teacher_forcing,
        "maxNewTokens": config.generation.max_new_tokens,
        "plan": plan.to_json(),
        "config": config.model_dump(
            mode="json", by_alias=True, exclude={"output": {"uri"}, "parallelism": True}
        ),
    }


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode()


def read_manifest(storage: Storage) -> dict[str, Any]:
    data = storage.read_bytes(layout.MANIFEST)
    try:
        manifest = json.loads(data)
    except json.JSONDecodeError as err:
        raise StoreMismatch(f"{storage.uri}/{layout.MANIFEST} is not valid JSON: {err}") from None
    if manifest.get("formatVersion") != layout.FORMAT_VERSION:
        raise StoreMismatch(
            f"{storage.uri}/{layout.MANIFEST} has format version {manifest.get('formatVersion')!r}; "
            f"this arcx reads version {layout.FORMAT_VERSION}"
        )
    return manifest


def compare_manifests(existing: dict[str, Any], wanted: dict[str, Any], where: str) -> None:
    """Raise StoreMismatch naming what differs; identical jobs pass."""
    checks = [
        ("configHash", "the job configuration (config hash)"),
        (("dataset", "fingerprint"), "the dataset (fingerprint)"),
        ("plan", "the unit plan"),
        (("model", "dModel"), "the model width"),
    ]
    for key, what in checks:
        a, b = existing, wanted
        for k in key if isinstance(key, tuple) else (key,):
            a = a.get(k) if isinstance(a, dict) else None
            b = b.get(k) if isinstance(b, dict) else None
        if a != b:
            raise StoreMismatch(
                f"the store {where} was written by another job: {what} differs "
                f"(store has {_short(a)}, this job has {_short(b)}). "
                "Point output.uri at a new location, or run the job that made this store."
            )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def ensure_manifest(storage: Storage, manifest: dict[str, Any]) -> bool:
    """Create the manifest, or check that the one there is this job's; True if created."""
    if storage.create_only(layout.MANIFEST, encode_manifest(manifest)):
        return True
    try:
        existing = read_manifest(storage)
    except NotFound:  # deleted between the two calls: try once more
        return storage.create_only(layout.MANIFEST, encode_manifest(manifest))
    compare_manifests(existing, manifest, storage.uri)
    return False
