"""Names inside an activation store: the one source of truth for every key.

The operator (which does not import JAX) counts ``units/*/COMMITTED`` against the
manifest's plan, so these names are a public contract; see docs/activation-store.md.
"""

from __future__ import annotations

FORMAT_VERSION = 1
SHARD_FORMAT = "arcx-activations/1"

MANIFEST = "manifest.json"
UNITS_DIR = "units"
PREDICTIONS_DIR = "predictions"
MARKER_NAME = "COMMITTED"
PART_PREFIX = "part-"
PART_SUFFIX = ".safetensors"


def unit_dir(unit: int) -> str:
    return f"{UNITS_DIR}/{unit:06d}"


def part_name(host: int) -> str:
    return f"{PART_PREFIX}{host:05d}{PART_SUFFIX}"


def part_key(unit: int, host: int) -> str:
    return f"{unit_dir(unit)}/{part_name(host)}"


def marker_key(unit: int) -> str:
    return f"{unit_dir(unit)}/{MARKER_NAME}"


def predictions_key(unit: int) -> str:
    return f"{PREDICTIONS_DIR}/{unit:06d}.jsonl"


def unit_of_marker(key: str) -> int | None:
    """``units/000012/COMMITTED`` -> 12; anything else -> None."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == UNITS_DIR and parts[2] == MARKER_NAME and parts[1].isdigit():
        return int(parts[1])
    return None
