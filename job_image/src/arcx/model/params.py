"""From HF safetensors to sharded parameters: the name table, a lazy reader, and placement.

Each row of :data:`PARAM_TABLE` names one parameter of :class:`~arcx.model.qwen2.Qwen2ForCausalLM`
(a dotted attribute path), the HF tensor it comes from, whether it is transposed (PyTorch
``nn.Linear`` stores ``[out, in]``; arcx computes ``x @ kernel`` with ``[in, out]``), and its
logical axes for sharding.

Tensors are memory-mapped from the ``.safetensors`` files (the format is an 8-byte header
length, a JSON header, then raw little-endian data) and every device receives only its own
slice through ``jax.make_array_from_callback``: no parameter is ever assembled whole on one
host when the mesh shards it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import numpy as np
from arcx_store.dtypes import BY_NAME
from arcx_store.header import LENGTH_BYTES, HeaderError, header_length, read_header_file
from flax import nnx
from jax.sharding import Mesh

from arcx.model import sharding
from arcx.model.config import Qwen2Config
from arcx.model.errors import ModelLoadError
from arcx.model.qwen2 import Qwen2ForCausalLM, abstract_model


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    path: str  # attribute path in the NNX module; "{i}" is the layer number
    hf_name: str  # tensor name in the checkpoint
    transpose: bool
    logical_axes: tuple[str, ...]  # of the arcx (possibly transposed) array


PARAM_TABLE: tuple[ParamSpec, ...] = (
    ParamSpec("embed", "model.embed_tokens.weight", False, ("vocab", "embed")),
    ParamSpec("norm.weight", "model.norm.weight", False, ("embed",)),
    ParamSpec("lm_head", "lm_head.weight", True, ("embed", "vocab")),
    ParamSpec(
        "layers.{i}.input_norm.weight", "model.layers.{i}.input_layernorm.weight", False, ("embed",)
    ),
    ParamSpec(
        "layers.{i}.post_attn_norm.weight",
        "model.layers.{i}.post_attention_layernorm.weight",
        False,
        ("embed",),
    ),
    ParamSpec(
        "layers.{i}.attn.q_kernel",
        "model.layers.{i}.self_attn.q_proj.weight",
        True,
        ("embed", "heads"),
    ),
    ParamSpec(
        "layers.{i}.attn.q_bias", "model.layers.{i}.self_attn.q_proj.bias", False, ("heads",)
    ),
    ParamSpec(
        "layers.{i}.attn.k_kernel",
        "model.layers.{i}.self_attn.k_proj.weight",
        True,
        ("embed", "kv_heads"),
    ),
    ParamSpec(
        "layers.{i}.attn.k_bias", "model.layers.{i}.self_attn.k_proj.bias", False, ("kv_heads",)
    ),
    ParamSpec(
        "layers.{i}.attn.v_kernel",
        "model.layers.{i}.self_attn.v_proj.weight",
        True,
        ("embed", "kv_heads"),
    ),
    ParamSpec(
        "layers.{i}.attn.v_bias", "model.layers.{i}.self_attn.v_proj.bias", False, ("kv_heads",)
    ),
    ParamSpec(
        "layers.{i}.attn.o_kernel",
        "model.layers.{i}.self_attn.o_proj.weight",
        True,
        ("heads", "embed"),
    ),
    ParamSpec(
        "layers.{i}.mlp.gate_kernel",
        "model.layers.{i}.mlp.gate_proj.weight",
        True,
        ("embed", "mlp"),
    ),
    ParamSpec(
        "layers.{i}.mlp.up_kernel", "model.layers.{i}.mlp.up_proj.weight", True, ("embed", "mlp")
    ),
    ParamSpec(
        "layers.{i}.mlp.down_kernel",
        "model.layers.{i}.mlp.down_proj.weight",
        True,
        ("mlp", "embed"),
    ),
)

# Checkpoint tensors that carry no parameter of their own.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def expected_params(cfg: Qwen2Config) -> list[ParamSpec]:
    """The concrete (path, HF name) pairs a checkpoint for ``cfg`` must provide."""
    out: list[ParamSpec] = []
    for spec in PARAM_TABLE:
        if spec.path == "lm_head" and cfg.tie_word_embeddings:
            continue
        for i in range(cfg.num_hidden_layers) if "{i}" in spec.path else [0]:
            out.append(
                dataclasses.replace(
                    spec, path=spec.path.format(i=i), hf_name=spec.hf_name.format(i=i)
                )
            )
    return out


class SafetensorsReader:
    """Lazy, read-only access to the tensors of one or more ``.safetensors`` files."""

    def __init__(self, files: list[Path]):
        self._where: dict[str, tuple[Path, dict]] = {}
        for path in files:
            for name, info in _read_header(path).items():
                if name != "__metadata__":
                    self._where[name] = (path, info)

    @classmethod
    def from_dir(cls, model_dir: Path) -> SafetensorsReader:
        index = model_dir / "model.safetensors.index.json"
        if index.exists():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
                names = set(weight_map.values())
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
                raise ModelLoadError(f"{index}: not a safetensors index ({err!r})") from None
            # Shard names are joined to model_dir: only plain file names, none that leave it.
            bad = [n for n in names if not _plain_file_name(n)]
            if bad:
                raise ModelLoadError(f"{index}: shard name {bad[0]!r} is not a file in {model_dir}")
            files = sorted(model_dir / f for f in names)
            missing = [str(f) for f in files if not f.exists()]
            if missing:
                raise ModelLoadError(f"{index} names shard files that do not exist: {missing}")
            return cls(files)
        single = model_dir / "model.safetensors"
        if single.exists():
            return cls([single])
        raise ModelLoadError(
            f"{model_dir}: no model.safetensors or model.safetensors.index.json; "
            "arcx reads HF safetensors checkpoints only"
        )

    def names(self) -> set[str]:
        return set(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._where[name][1]["shape"])

    def get(self, name: str) -> np.ndarray:
        """A read-only memory map of the tensor; slicing it reads only that slice from disk."""
        path, info = self._where[name]
        dtype = BY_NAME.get(info["dtype"])
        if dtype is None:
            raise ModelLoadError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end - begin != dtype.itemsize * int(np.prod(shape)):
            raise ModelLoadError(f"{path}: tensor {name} has a corrupt size in the header")
        if not shape or 0 in shape:
            return np.zeros(shape, dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=_data_start(path) + begin, shape=shape)


def _plain_file_name(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and not set("/\\\0") & set(name)


def _read_header(path: Path) -> dict:
    # The store package's bounded reader: an absurd length field is refused before any read.
    try:
        with open(path, "rb") as f:
            return read_header_file(f, os.fstat(f.fileno()).st_size)[0]
    except HeaderError as err:
        raise ModelLoadError(f"{path}: {err}") from None


def _data_start(path: Path) -> int:
    with open(path, "rb") as f:
        return LENGTH_BYTES + header_length(f.read(LENGTH_BYTES), os.fstat(f.fileno()).st_size)


def _resolve(model: nnx.Module, path: str) -> nnx.Param:
    obj: object = model
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)  # type: ignore[index]
    assert isinstance(obj, nnx.Param), path
    return obj


def check_checkpoint(reader: SafetensorsReader, cfg: Qwen2Config, where: str) -> list[ParamSpec]:
    """Every expected tensor present with the right shape, and nothing unexplained left over."""
    specs = expected_params(cfg)
    abstract = abstract_model(cfg)
    names = reader.names()
    missing = [s.hf_name for s in specs if s.hf_name not in names]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ModelLoadError(
            f"{where}: checkpoint is missing tensor(s) {shown}; is config.json from the same model?"
        )
    for s in specs:
        want = tuple(_resolve(abstract, s.path).shape)
        want_hf = want[::-1] if s.transpose else want
        got = reader.shape(s.hf_name)
        if got != want_hf:
            raise ModelLoadError(
                f"{where}: tensor {s.hf_name} has shape {list(got)} but config.json implies "
                f"{list(want_hf)}"
            )
    known = {s.hf_name for s in specs}
    if cfg.tie_word_embeddings:
        known.add("lm_head.weight")  # some tied checkpoints still store a copy
    extra = sorted(n for n in names - known if not n.endswith(_IGNORED_SUFFIXES))
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise ModelLoadError(
            f"{where}: checkpoint has tensor(s) arcx's Qwen2 does not use: {shown}; "
            "is this a Qwen2ForCausalLM checkpoint?"
        )
    return specs


def _placed(
    src: np.ndarray, spec: ParamSpec, dtype: np.dtype, mesh: Mesh, head_dim: int
) -> jax.Array:
    shape = src.shape[::-1] if spec.transpose else src.shape
    target = sharding.named_sharding(spec.logical_axes, shape, mesh, head_dim)

    def slice_for(index: tuple[slice, ...]) -> np.ndarray:
        part = src[index[::-1]].T if spec.transpose else src[index]
        return np.array(part, dtype=dtype, order="C", copy=True)  # never alias the file's pages

    return jax.make_array_from_callback(shape, target, slice_for)


def load_params(
    model_dir: Path, cfg: Qwen2Config, mesh: Mesh, dtype: str = "float32"
) -> Qwen2ForCausalLM:
    """The model with every parameter read from ``model_dir`` into its sharding on ``mesh``."""
    reader = SafetensorsReader.from_dir(model_dir)
    specs = check_checkpoint(reader, cfg, str(model_dir))
    model = abstract_model(cfg, dtype)
    np_dtype = np.dtype(model.dtype)
    for spec in specs:
        _resolve(model, spec.path).set_value(
            _placed(reader.get(spec.hf_name), spec, np_dtype, mesh, cfg.head_dim)
        )
    return model
