"""One device mesh with axes (``data``, ``model``) and the logical-axis rules that shard params.

Every parameter is described by logical axis names (``layers``, ``vocab``, ``embed``,
``heads``, ``kv_heads``, ``head_dim``, ``mlp``); the rules map them onto mesh axes. With ``model`` of size 1 (the
default) every parameter is replicated and the batch is split over ``data``: pure data
parallel. With a larger ``model`` axis the attention heads, the MLP width and the vocabulary
are split over it (tensor parallel). A dimension that the axis size does not divide stays
replicated rather than failing (e.g. 2 KV heads on a model axis of 4).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA, MODEL = "data", "model"

LOGICAL_RULES: dict[str, str | None] = {
    "batch": DATA,
    "layers": None,  # the stacked layer axis: the scan walks it, every device holds all layers
    "head_dim": None,
    "vocab": MODEL,
    "embed": None,
    "heads": MODEL,
    "kv_heads": MODEL,
    "mlp": MODEL,
}


def make_mesh(model_axis: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, model) mesh over ``devices`` (default: all devices of every process)."""
    devs = list(jax.devices() if devices is None else devices)
    if model_axis < 1 or len(devs) % model_axis:
        raise ValueError(
            f"model axis size {model_axis} must be >= 1 and divide the device count {len(devs)}"
        )
    shape = (len(devs) // model_axis, model_axis)
    try:
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(shape, devices=devs)
    except (ValueError, NotImplementedError, AssertionError):
        grid = np.array(devs).reshape(shape)
    return Mesh(grid, (DATA, MODEL))


# Logical axes whose dimension is (number of heads) * head_dim: split only between whole heads.
HEAD_AXES = ("heads", "kv_heads")


def partition_spec(
    logical_axes: Sequence[str], shape: Sequence[int], mesh: Mesh, head_dim: int = 1
) -> PartitionSpec:
    """The spec for an array with these logical axes; a dimension whose units (heads for the
    head axes, elements otherwise) the mesh axis does not divide is replicated."""
    spec: list[str | None] = []
    for name, size in zip(logical_axes, shape, strict=True):
        axis = LOGICAL_RULES[name]
        units = size // head_dim if name in HEAD_AXES else size
        if axis is not None and (mesh.shape[axis] == 1 or units % mesh.shape[axis]):
            axis = None
        spec.append(axis)
    return PartitionSpec(*spec)


def named_sharding(
    logical_axes: Sequence[str], shape: Sequence[int], mesh: Mesh, head_dim: int = 1
) -> NamedSharding:
    return NamedSharding(mesh, partition_spec(logical_axes, shape, mesh, head_dim))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows split over ``data``, everything else replicated: for input ids, masks and outputs."""
    return NamedSharding(mesh, PartitionSpec(DATA))
