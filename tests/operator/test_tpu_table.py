"""The TPU table against Google's published slice shapes (GKE TPU planning tables and the
Cloud TPU v4 / v5e / v5p / v6e pages): chips = product of the topology; single-host
slices hold every chip on one VM; multi-host slices have 4 chips per VM."""

from __future__ import annotations

import pytest

from arcx_operator import tpu

# (accelerator, topology, chips, hosts, chips per host) as published.
PUBLISHED = [
    ("tpu-v5-lite-podslice", "1x1", 1, 1, 1),
    ("tpu-v5-lite-podslice", "2x2", 4, 1, 4),
    ("tpu-v5-lite-podslice", "2x4", 8, 1, 8),
    ("tpu-v5-lite-podslice", "4x4", 16, 4, 4),
    ("tpu-v5-lite-podslice", "4x8", 32, 8, 4),
    ("tpu-v5-lite-podslice", "8x8", 64, 16, 4),
    ("tpu-v5-lite-podslice", "8x16", 128, 32, 4),
    ("tpu-v5-lite-podslice", "16x16", 256, 64, 4),
    ("tpu-v6e-slice", "1x1", 1, 1, 1),
    ("tpu-v6e-slice", "2x4", 8, 1, 8),
    ("tpu-v6e-slice", "4x4", 16, 4, 4),
    ("tpu-v6e-slice", "16x16", 256, 64, 4),
    ("tpu-v4-podslice", "2x2x1", 4, 1, 4),
    ("tpu-v4-podslice", "2x2x2", 8, 2, 4),
    ("tpu-v4-podslice", "2x2x4", 16, 4, 4),
    ("tpu-v4-podslice", "2x4x4", 32, 8, 4),
    ("tpu-v4-podslice", "4x4x4", 64, 16, 4),
    ("tpu-v4-podslice", "8x8x8", 512, 128, 4),
    ("tpu-v5p-slice", "2x2x1", 4, 1, 4),
    ("tpu-v5p-slice", "2x2x2", 8, 2, 4),
    ("tpu-v5p-slice", "2x4x4", 32, 8, 4),
    ("tpu-v5p-slice", "4x4x4", 64, 16, 4),
    ("tpu-v5p-slice", "4x4x8", 128, 32, 4),
    ("tpu-v5p-slice", "8x16x16", 2048, 512, 4),
    ("tpu-v5p-slice", "16x16x24", 6144, 1536, 4),
]


@pytest.mark.parametrize(("accelerator", "topology", "chips", "hosts", "per_host"), PUBLISHED)
def test_published_shapes(
    accelerator: str, topology: str, chips: int, hosts: int, per_host: int
) -> None:
    shape = tpu.slice_shape(accelerator, topology)
    assert (shape.chips, shape.hosts, shape.chips_per_host) == (chips, hosts, per_host)


def test_every_entry_is_consistent() -> None:
    for g in tpu.GENERATIONS:
        for t in g.single_host + g.multi_host:
            s = tpu.slice_shape(g.accelerator, t)
            assert s.hosts * s.chips_per_host == s.chips
            if t in g.multi_host:
                assert s.chips_per_host == 4 and s.hosts > 1


def test_short_names_resolve() -> None:
    assert tpu.slice_shape("v5e", "4x4").accelerator == "tpu-v5-lite-podslice"
    assert tpu.slice_shape("v6e", "2x2").accelerator == "tpu-v6e-slice"


def test_a_topology_of_another_generation_is_rejected_with_the_options() -> None:
    with pytest.raises(
        tpu.UnknownTopology, match=r"'2x2x2' is not offered for tpu-v5-lite-podslice.*4x4"
    ):
        tpu.slice_shape("tpu-v5-lite-podslice", "2x2x2")


def test_unknown_accelerator_lists_known_ones() -> None:
    with pytest.raises(tpu.UnknownTopology, match="tpu-v6e-slice"):
        tpu.slice_shape("tpu-v9", "2x2")


def test_malformed_topology() -> None:
    with pytest.raises(tpu.UnknownTopology, match="AxB"):
        tpu.chips_in("4by4")
