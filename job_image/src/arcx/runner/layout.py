"""Re-export: the store's names live in ``arcx_store.layout`` (shared with the operator)."""

from arcx_store.layout import (
    FORMAT_VERSION,
    MANIFEST,
    MARKER_NAME,
    PART_PREFIX,
    PART_SUFFIX,
    PREDICTIONS_DIR,
    SHARD_FORMAT,
    UNITS_DIR,
    marker_key,
    part_key,
    part_name,
    predictions_key,
    tensor_name,
    unit_dir,
    unit_of_marker,
)

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "MARKER_NAME",
    "PART_PREFIX",
    "PART_SUFFIX",
    "PREDICTIONS_DIR",
    "SHARD_FORMAT",
    "UNITS_DIR",
    "marker_key",
    "part_key",
    "part_name",
    "predictions_key",
    "tensor_name",
    "unit_dir",
    "unit_of_marker",
]
