"""The logical-axis rules, as a pure function of shapes and mesh axis sizes."""

from __future__ import annotations

import jax
import pytest
from jax.sharding import AbstractMesh, PartitionSpec

from arcx.model import make_mesh
from arcx.model.sharding import partition_spec


def _mesh(data: int, model: int) -> AbstractMesh:
    return AbstractMesh((data, model), ("data", "model"))


def test_model_axis_one_replicates_everything():
    for axes, shape in [(("vocab", "embed"), (640, 64)), (("embed", "mlp"), (64, 128))]:
        assert partition_spec(axes, shape, _mesh(4, 1), head_dim=16) == PartitionSpec(None, None)


def test_tensor_parallel_splits_heads_mlp_and_vocab():
    mesh = _mesh(1, 4)
    assert partition_spec(("embed", "heads"), (64, 64), mesh, head_dim=16) == PartitionSpec(
        None, "model"
    )
    assert partition_spec(("heads", "embed"), (64, 64), mesh, head_dim=16) == PartitionSpec(
        "model", None
    )
    assert partition_spec(("embed", "mlp"), (64, 128), mesh, head_dim=16) == PartitionSpec(
        None, "model"
    )
    assert partition_spec(("vocab", "embed"), (640, 64), mesh, head_dim=16) == PartitionSpec(
        "model", None
    )


def test_undividable_dimensions_stay_replicated():
    mesh = _mesh(1, 4)
    # 2 KV heads of 16 cannot go on 4 devices without cutting a head in two
    assert partition_spec(("embed", "kv_heads"), (64, 32), mesh, head_dim=16) == PartitionSpec(
        None, None
    )
    assert partition_spec(("kv_heads",), (32,), mesh, head_dim=16) == PartitionSpec(None)
    assert partition_spec(("vocab", "embed"), (642, 64), mesh) == PartitionSpec(None, None)


def test_make_mesh_checks_the_model_axis():
    mesh = make_mesh()
    assert mesh.axis_names == ("data", "model") and mesh.shape["model"] == 1
    assert mesh.shape["data"] == jax.device_count()
    with pytest.raises(ValueError, match="must be >= 1 and divide the device count"):
        make_mesh(jax.device_count() + 1)
