"""``load_model``: config, sharded weights and tokenizer from one model source."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jax.sharding import Mesh

from arcx.model.config import ModelConfig
from arcx.model.decoder import CausalLM
from arcx.model.errors import ModelLoadError
from arcx.model.params import load_params
from arcx.model.sources import resolve_model_dir


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    model: CausalLM
    config: ModelConfig
    tokenizer: Any  # a transformers PreTrainedTokenizerBase
    path: Path  # the local directory it was read from
    eos_token_ids: tuple[int, ...]  # generation stops at any of these
    pad_token_id: int


def load_model(source: str, *, mesh: Mesh, dtype: str = "float32") -> LoadedModel:
    model_dir = resolve_model_dir(source)
    config = ModelConfig.from_file(model_dir / "config.json")
    tokenizer = load_tokenizer(model_dir)
    model = load_params(model_dir, config, mesh, dtype)
    eos = _eos_ids(model_dir, config, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    return LoadedModel(model, config, tokenizer, model_dir, eos, int(pad))


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{model_dir}: could not load the tokenizer: {err}") from None


def _eos_ids(model_dir: Path, config: ModelConfig, tokenizer: Any) -> tuple[int, ...]:
    """End-of-turn ids: generation_config.json's eos_token_id, else config.json's, else the tokenizer's."""
    ids: list[int] = []
    gen = model_dir / "generation_config.json"
    if gen.exists():
        value = json.loads(gen.read_text()).get("eos_token_id")
        ids = [] if value is None else value if isinstance(value, list) else [value]
    if not ids:
        ids = list(config.eos_token_id)
    if not ids and tokenizer.eos_token_id is not None:
        ids = [tokenizer.eos_token_id]
    if not ids:
        raise ModelLoadError(
            f"{model_dir}: no eos_token_id in generation_config.json, config.json or tokenizer"
        )
    return tuple(int(i) for i in ids)
