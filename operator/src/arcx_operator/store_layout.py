"""Names inside an activation store that the progress reader relies on (read-only).

The store layout is the runner's contract (docs/activation-store.md, arcx.runner.layout);
the operator repeats only these names, here, and a test pins them to the runner's.
"""

from __future__ import annotations

MANIFEST = "manifest.json"
UNITS_DIR = "units"
MARKER_NAME = "COMMITTED"


def unit_of_marker(key: str) -> int | None:
    """``units/000012/COMMITTED`` -> 12; anything else -> None."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == UNITS_DIR and parts[2] == MARKER_NAME and parts[1].isdigit():
        return int(parts[1])
    return None
