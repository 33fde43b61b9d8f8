"""The manifest of an extraction job: built here from the job config and the model's facts;
read, encoded, compared and created by ``arcx_store.manifest``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arcx_store import layout
from arcx_store.errors import StoreMismatch
from arcx_store.manifest import (
    CONFIG_HASH_EXCLUDE,
    compare_manifests,
    encode_manifest,
    ensure_manifest,
    read_manifest,
)

from arcx.config import JobConfig
from arcx.runner.plan import UnitPlan

__all__ = [
    "ModelFacts",
    "StoreMismatch",
    "build_manifest",
    "compare_manifests",
    "encode_manifest",
    "ensure_manifest",
    "read_manifest",
]


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
        # whether predictions/ holds the teacher-forced score of each answer (`arcx inspect`)
        "scores": ex.scores,
        "maxNewTokens": config.generation.max_new_tokens,
        "plan": plan.to_json(),
        "config": config.model_dump(mode="json", by_alias=True, exclude=CONFIG_HASH_EXCLUDE),
    }
