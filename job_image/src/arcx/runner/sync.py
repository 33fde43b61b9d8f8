"""Agreement between the processes of one slice, through JAX collectives.

Every call is collective: all processes of the slice call it at the same point. With one
process they return at once.
"""

from __future__ import annotations

import numpy as np


def _allgather(local: np.ndarray) -> np.ndarray:
    """[n_processes, *local.shape]: every process's array, in process order."""
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return local[None]
    return np.asarray(multihost_utils.process_allgather(local, tiled=False))


def any_flag(flag: bool) -> bool:
    """True on every process if any process passed True (e.g. a SIGTERM arrived)."""
    return bool(_allgather(np.array([int(flag)], np.int32)).any())


def from_host0(value: int) -> int:
    """Process 0's value, on every process."""
    return int(_allgather(np.array([value], np.int64))[0, 0])


def gather_records(record: bytes, size: int) -> list[bytes]:
    """Every process's fixed-size record (padded with zeros to ``size``), in process order."""
    if len(record) > size:
        raise ValueError(f"record of {len(record)} bytes exceeds {size}")
    buf = np.zeros(size, np.uint8)
    buf[: len(record)] = np.frombuffer(record, np.uint8)
    return [bytes(row) for row in _allgather(buf)]
