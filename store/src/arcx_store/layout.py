"""Names inside an activation store: the one source of truth for every key and tensor name.

The operator (which does not import JAX) counts ``units/*/COMMITTED`` against the
manifest's plan, so these names are a public contract; see docs/activation-store.md.
"""

from __future__ import annotations

import re

# 2: markers may record the backend's checksum (crc32c) of each file and why a unit was
# redone; 3: parts hold token annotations (ann.*), each sequence's augmentation (seq.*)
# and activation statistics (stats.*). Readers refuse a store whose format is newer than
# FORMAT_VERSION.
FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
SHARD_FORMAT = "arcx-activations/1"

MANIFEST = "manifest.json"
# The plan summary process 0 of slice 0 writes when a job starts (arcx_store.plan).
PLAN = "plan.json"
UNITS_DIR = "units"
PREDICTIONS_DIR = "predictions"
# The runner's unit events, one file per attempt (one start of process 0 of a slice), one
# JSON object per line; `arcx report` draws throughput over time from them.
EVENTS_DIR = "events"
EVENTS_SUFFIX = ".jsonl"
MARKER_NAME = "COMMITTED"
PART_PREFIX = "part-"
PART_SUFFIX = ".safetensors"
# Temporary files of an unfinished write end in this suffix (LocalStorage); the stray
# clean-up removes them like any other file a marker does not name.
TEMP_SUFFIX = ".tmp"

# -- tensor names inside a part ----------------------------------------------------------
TOKEN_IDS = "token_ids"  # int32 [n_tokens]
OFFSETS = "offsets"  # int64 [n_seq + 1]: sequence i is rows offsets[i]:offsets[i+1]

# Format 3: token annotations, int32 [n_tokens] each (arcx.prompts.annotations) ...
ANN_PREFIX = "ann."
ANN_ROLE = "ann.role"
ANN_EXAMPLE = "ann.example"
ANN_ROW = "ann.row"
ANN_COL = "ann.col"
ANN_COLOUR = "ann.colour"
ANN_CELLS = "ann.cells"
ANNOTATION_TENSORS = (ANN_ROLE, ANN_EXAMPLE, ANN_ROW, ANN_COL, ANN_COLOUR, ANN_CELLS)
# ... and per sequence: the augmentation, int32 [n_seq] and [n_seq, 10].
SEQ_DIHEDRAL = "seq.dihedral"
SEQ_COLOUR_PERM = "seq.colour_perm"
SEQUENCE_TENSORS = (SEQ_DIHEDRAL, SEQ_COLOUR_PERM)
STATS_PREFIX = "stats"


def tensor_name(site: str, layer: int) -> str:
    """Activations of ``site`` at ``layer``: ``resid_post.3``."""
    return f"{site}.{layer}"


def stats_name(site: str, layer: int, stat: str) -> str:
    """A statistic of one site and layer: ``stats.resid_post.3.mean``."""
    return f"{STATS_PREFIX}.{site}.{layer}.{stat}"


# -- keys --------------------------------------------------------------------------------


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


def events_key(attempt: str) -> str:
    """``events/<attempt>.jsonl``: one attempt's unit events."""
    return f"{EVENTS_DIR}/{attempt}{EVENTS_SUFFIX}"


_PART_KEY = re.compile(rf"{UNITS_DIR}/(\d{{6,}})/{PART_PREFIX}\d{{5,}}{re.escape(PART_SUFFIX)}")


def unit_of_marker(key: str) -> int | None:
    """``units/000012/COMMITTED`` -> 12; anything else -> None."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == UNITS_DIR and parts[2] == MARKER_NAME and parts[1].isdigit():
        return int(parts[1])
    return None


def unit_of_part(key: str) -> int | None:
    """``units/000012/part-00003.safetensors`` -> 12; anything else (``../x``) -> None."""
    m = _PART_KEY.fullmatch(key)
    return int(m.group(1)) if m else None


def check_key(key: str) -> str | None:
    """Why ``key`` is not a key inside a store (absolute, ``..``, empty parts), or None."""
    if not isinstance(key, str) or not key:
        return "an empty key"
    if key.startswith("/") or "\\" in key or "\0" in key or re.match(r"^[A-Za-z]:", key):
        return f"{key!r} is an absolute path"
    if any(p in ("", ".", "..") for p in key.split("/")):
        return f"{key!r} has an empty, '.' or '..' part"
    return None
