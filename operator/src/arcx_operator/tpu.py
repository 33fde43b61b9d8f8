"""TPU generations and slice topologies on GKE: chips, hosts and chips per host.

The single source of truth for how many pods a slice needs and how many ``google.com/tpu``
chips each requests. Numbers follow Google's published GKE/Cloud TPU tables: a topology
"AxB[xC]" has A*B*C chips; single-host slices put every chip on one VM, multi-host slices
have 4 chips per host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    name: str  # short name, e.g. "v5e"
    accelerator: str  # the GKE node label value cloud.google.com/gke-tpu-accelerator
    single_host: tuple[str, ...]  # topologies that fit on one VM
    multi_host: tuple[str, ...]  # topologies spread over VMs with 4 chips each


@dataclass(frozen=True)
class SliceShape:
    accelerator: str
    topology: str
    chips: int
    hosts: int
    chips_per_host: int


MULTI_HOST_CHIPS_PER_HOST = 4

GENERATIONS: tuple[Generation, ...] = (
    Generation(
        name="v4",
        accelerator="tpu-v4-podslice",
        single_host=("2x2x1",),
        multi_host=(
            "2x2x2", "2x2x4", "2x4x4", "4x4x4", "4x4x8", "4x8x8",
            "8x8x8", "8x8x12", "8x8x16", "8x16x16", "12x16x16", "16x16x16",
        ),
    ),
    Generation(
        name="v5e",
        accelerator="tpu-v5-lite-podslice",
        single_host=("1x1", "2x2", "2x4"),
        multi_host=("4x4", "4x8", "8x8", "8x16", "16x16"),
    ),
    Generation(
        name="v5p",
        accelerator="tpu-v5p-slice",
        single_host=("2x2x1",),
        multi_host=(
            "2x2x2", "2x2x4", "2x4x4", "4x4x4", "4x4x8", "4x8x8",
            "8x8x8", "8x8x16", "8x16x16", "16x16x16", "16x16x24",
        ),
    ),
    Generation(
        name="v6e",
        accelerator="tpu-v6e-slice",
        single_host=("1x1", "2x2", "2x4"),
        multi_host=("4x4", "4x8", "8x8", "8x16", "16x16"),
    ),
)  # fmt: skip

ACCELERATORS: tuple[str, ...] = tuple(g.accelerator for g in GENERATIONS)


class UnknownTopology(ValueError):
    """The accelerator or topology is not in the table."""


def chips_in(topology: str) -> int:
    try:
        dims = [int(d) for d in topology.split("x")]
    except ValueError:
        raise UnknownTopology(f"topology {topology!r} is not of the form AxB or AxBxC") from None
    if not 2 <= len(dims) <= 3 or any(d < 1 for d in dims):
        raise UnknownTopology(f"topology {topology!r} is not of the form AxB or AxBxC")
    return math.prod(dims)


def generation(accelerator: str) -> Generation:
    for g in GENERATIONS:
        if accelerator in (g.accelerator, g.name):
            return g
    known = ", ".join(ACCELERATORS)
    raise UnknownTopology(f"unknown TPU accelerator {accelerator!r}; known: {known}")


def topologies(accelerator: str) -> tuple[str, ...]:
    g = generation(accelerator)
    return g.single_host + g.multi_host


def slice_shape(accelerator: str, topology: str) -> SliceShape:
    """Chips, hosts and chips per host of one slice; raises UnknownTopology with the options."""
    g = generation(accelerator)
    chips = chips_in(topology)
    if topology in g.single_host:
        return SliceShape(g.accelerator, topology, chips, 1, chips)
    if topology in g.multi_host:
        per_host = MULTI_HOST_CHIPS_PER_HOST
        return SliceShape(g.accelerator, topology, chips, chips // per_host, per_host)
    options = ", ".join(topologies(g.accelerator))
    raise UnknownTopology(
        f"topology {topology!r} is not offered for {g.accelerator}; choose one of: {options}"
    )
