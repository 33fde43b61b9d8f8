"""From HF safetensors to sharded parameters: the name table, a lazy reader, and placement.

Each row of :data:`PARAM_TABLE` names one parameter of :class:`~arcx.model.decoder.CausalLM`
(a dotted attribute path), the HF tensor it comes from, whether it is transposed (PyTorch
``nn.Linear`` stores ``[out, in]``; arcx computes ``x @ kernel`` with ``[in, out]``), its
logical axes for sharding, and the config switch it depends on. A per-layer tensor
(``model.layers.{i}.…``) becomes one array with a leading layer axis, which is never
sharded: each device holds its slice of every layer.

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
from arcx.model.config import ModelConfig
from arcx.model.decoder import CausalLM, abstract_model
from arcx.model.errors import ModelLoadError


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    path: str  # attribute path in the NNX module
    hf_name: str  # tensor name in the checkpoint; "{i}" is the layer number
    transpose: bool
    logical_axes: tuple[str, ...]  # of one (possibly transposed) layer's array
    when: str = ""  # the ModelConfig switch that must be on for this tensor to exist

    @property
    def stacked(self) -> bool:
        """One array for all layers, layer axis first (``"layers"``, never sharded)."""
        return "{i}" in self.hf_name

    def hf_names(self, n_layers: int) -> list[str]:
        return (
            [self.hf_name.format(i=i) for i in range(n_layers)] if self.stacked else [self.hf_name]
        )


def _layer(path: str, hf: str, transpose: bool, axes: tuple[str, ...], when: str = "") -> ParamSpec:
    return ParamSpec(f"layers.{path}", f"model.layers.{{i}}.{hf}", transpose, axes, when)


PARAM_TABLE: tuple[ParamSpec, ...] = (
    ParamSpec("embed", "model.embed_tokens.weight", False, ("vocab", "embed")),
    ParamSpec("norm.weight", "model.norm.weight", False, ("embed",)),
    ParamSpec("lm_head", "lm_head.weight", True, ("embed", "vocab"), when="untied"),
    _layer("input_norm.weight", "input_layernorm.weight", False, ("embed",)),
    _layer("post_attn_norm.weight", "post_attention_layernorm.weight", False, ("embed",)),
    _layer("attn.q_kernel", "self_attn.q_proj.weight", True, ("embed", "heads")),
    _layer("attn.k_kernel", "self_attn.k_proj.weight", True, ("embed", "kv_heads")),
    _layer("attn.v_kernel", "self_attn.v_proj.weight", True, ("embed", "kv_heads")),
    _layer("attn.o_kernel", "self_attn.o_proj.weight", True, ("heads", "embed")),
    _layer("attn.q_bias", "self_attn.q_proj.bias", False, ("heads",), when="qkv_bias"),
    _layer("attn.k_bias", "self_attn.k_proj.bias", False, ("kv_heads",), when="qkv_bias"),
    _layer("attn.v_bias", "self_attn.v_proj.bias", False, ("kv_heads",), when="qkv_bias"),
    _layer("attn.o_bias", "self_attn.o_proj.bias", False, ("embed",), when="o_bias"),
    _layer("attn.q_norm.weight", "self_attn.q_norm.weight", False, ("head_dim",), when="qk_norm"),
    _layer("attn.k_norm.weight", "self_attn.k_norm.weight", False, ("head_dim",), when="qk_norm"),
    _layer("mlp.gate_kernel", "mlp.gate_proj.weight", True, ("embed", "mlp")),
    _layer("mlp.up_kernel", "mlp.up_proj.weight", True, ("embed", "mlp")),
    _layer("mlp.down_kernel", "mlp.down_proj.weight", True, ("mlp", "embed")),
)

# Checkpoint tensors that carry no parameter of their own.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def _switch_on(cfg: ModelConfig, when: str) -> bool:
    if not when:
        return True
    if when == "untied":
        return not cfg.tie_word_embeddings
    return bool(getattr(cfg, when))


def expected_params(cfg: ModelConfig) -> list[ParamSpec]:
    """The parameters a checkpoint for ``cfg`` must provide (each stacked one for every layer)."""
    return [spec for spec in PARAM_TABLE if _switch_on(cfg, spec.when)]


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
        obj = getattr(obj, part)
    assert isinstance(obj, nnx.Param), path
    return obj


def _shorten(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def check_checkpoint(reader: SafetensorsReader, cfg: ModelConfig, where: str) -> list[ParamSpec]:
    """Every expected tensor present with the right shape, and nothing unexplained left over."""
    specs = expected_params(cfg)
    abstract = abstract_model(cfg)
    n = cfg.num_hidden_layers
    names = reader.names()
    missing = [name for s in specs for name in s.hf_names(n) if name not in names]
    if missing:
        raise ModelLoadError(
            f"{where}: checkpoint is missing tensor(s) {_shorten(missing)}; "
            "is config.json from the same model?"
        )
    for s in specs:
        want = tuple(_resolve(abstract, s.path).shape)[1 if s.stacked else 0 :]
        want_hf = want[::-1] if s.transpose else want
        for name in s.hf_names(n):
            got = reader.shape(name)
            if got != want_hf:
                raise ModelLoadError(
                    f"{where}: tensor {name} has shape {list(got)} but config.json implies "
                    f"{list(want_hf)}"
                )
    known = {name for s in specs for name in s.hf_names(n)}
    if cfg.tie_word_embeddings:
        known.add("lm_head.weight")  # some tied checkpoints still store a copy
    extra = sorted(x for x in names - known if not x.endswith(_IGNORED_SUFFIXES))
    if extra:
        raise ModelLoadError(
            f"{where}: checkpoint has tensor(s) arcx's {cfg.model_type} does not use: "
            f"{_shorten(extra)}; is config.json's model_type right for this checkpoint?"
        )
    return specs


def _placed(
    sources: list[np.ndarray], spec: ParamSpec, dtype: np.dtype, mesh: Mesh, head_dim: int
) -> jax.Array:
    """One device array from the checkpoint tensor(s) of ``spec``; every device's callback
    reads only its own slice (of every layer, for a stacked parameter)."""
    one = sources[0].shape[::-1] if spec.transpose else sources[0].shape
    axes = spec.logical_axes

    def part(src: np.ndarray, index: tuple[slice, ...]) -> np.ndarray:
        return src[index[::-1]].T if spec.transpose else src[index]

    if spec.stacked:
        shape = (len(sources), *one)
        target = sharding.named_sharding(("layers", *axes), shape, mesh, head_dim)

        def slice_for(index: tuple[slice, ...]) -> np.ndarray:
            picked = sources[index[0]]
            parts = [np.asarray(part(src, index[1:]), dtype=dtype) for src in picked]
            return np.stack(parts) if parts else np.zeros((0, *one), dtype)
    else:
        shape = one
        target = sharding.named_sharding(axes, shape, mesh, head_dim)

        def slice_for(index: tuple[slice, ...]) -> np.ndarray:
            # a copy: never alias the file's pages
            return np.array(part(sources[0], index), dtype=dtype, order="C", copy=True)

    return jax.make_array_from_callback(shape, target, slice_for)


def load_params(model_dir: Path, cfg: ModelConfig, mesh: Mesh, dtype: str = "float32") -> CausalLM:
    """The model with every parameter read from ``model_dir`` into its sharding on ``mesh``."""
    reader = SafetensorsReader.from_dir(model_dir)
    specs = check_checkpoint(reader, cfg, str(model_dir))
    model = abstract_model(cfg, dtype)
    np_dtype = np.dtype(model.dtype)
    for spec in specs:
        sources = [reader.get(name) for name in spec.hf_names(cfg.num_hidden_layers)]
        _resolve(model, spec.path).set_value(_placed(sources, spec, np_dtype, mesh, cfg.head_dim))
    return model
