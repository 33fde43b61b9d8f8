"""The pod environment contract and jax.distributed initialisation.

Environment (rendered by the operator; the cluster tests start pods with exactly it):

- ``JAX_COORDINATOR_ADDRESS``  host:port of process 0 of this slice
- ``JAX_NUM_PROCESSES``        processes in this slice
- ``JAX_PROCESS_ID``           this process, 0-based (fallback: ``JOB_COMPLETION_INDEX``)
- ``ARCX_SLICE_INDEX``         this slice, 0-based (default 0); the number of slices is
                               the config's ``parallelism.slices``

Nothing set: one process. On TPU, ``jax.distributed.initialize()`` autodetects the slice
(explicit values above, when present, are passed through). Each slice is its own JAX
cluster; no collective crosses slices.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from arcx.config import ConfigError

TPU_ENV_HINTS = ("TPU_WORKER_HOSTNAMES", "TPU_WORKER_ID", "TPU_ACCELERATOR_TYPE")


@dataclass(frozen=True)
class ClusterEnv:
    coordinator: str | None
    num_processes: int
    process_id: int
    slice_index: int
    tpu: bool = False

    @property
    def multi_process(self) -> bool:
        return self.num_processes > 1


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


def read_cluster_env(env: Mapping[str, str], *, slices: int = 1, tpu: bool = False) -> ClusterEnv:
    """Parse and check the pod environment contract (pure; raises ConfigError)."""
    coordinator = env.get("JAX_COORDINATOR_ADDRESS", "").strip() or None
    num = _int(env, "JAX_NUM_PROCESSES", 1)
    pid = _int(env, "JAX_PROCESS_ID", None)
    if pid is None:
        pid = _int(env, "JOB_COMPLETION_INDEX", 0)
    slice_index = _int(env, "ARCX_SLICE_INDEX", 0)
    assert num is not None and pid is not None and slice_index is not None
    if num < 1:
        raise ConfigError(f"JAX_NUM_PROCESSES must be >= 1, got {num}")
    if not 0 <= pid < num:
        raise ConfigError(f"process id {pid} is outside 0..{num - 1} (JAX_NUM_PROCESSES={num})")
    if not 0 <= slice_index < slices:
        raise ConfigError(
            f"ARCX_SLICE_INDEX={slice_index} is outside 0..{slices - 1} (parallelism.slices={slices})"
        )
    if num > 1 and not tpu:
        if coordinator is None:
            raise ConfigError("JAX_NUM_PROCESSES > 1 needs JAX_COORDINATOR_ADDRESS (host:port)")
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"JAX_COORDINATOR_ADDRESS={coordinator!r} is not host:port")
    return ClusterEnv(coordinator, num, pid, slice_index, tpu)


def tpu_present(env: Mapping[str, str] | None = None) -> bool:
    """A TPU host, judged without initialising a JAX backend (which must come after initialize)."""
    env = os.environ if env is None else env
    if env.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return False
    return (
        any(env.get(k) for k in TPU_ENV_HINTS)
        or os.path.exists("/dev/accel0")
        or os.path.exists("/dev/vfio/0")
    )


def initialize(cluster: ClusterEnv) -> None:
    """Join the slice's JAX cluster; a no-op for one process off TPU."""
    import jax

    if cluster.tpu:
        kwargs: dict[str, object] = {}
        if cluster.coordinator and cluster.multi_process:
            kwargs = {
                "coordinator_address": cluster.coordinator,
                "num_processes": cluster.num_processes,
                "process_id": cluster.process_id,
            }
        jax.distributed.initialize(**kwargs)
        return
    if not cluster.multi_process:
        return
    jax.distributed.initialize(
        coordinator_address=cluster.coordinator,
        num_processes=cluster.num_processes,
        process_id=cluster.process_id,
        initialization_timeout=int(os.environ.get("ARCX_INIT_TIMEOUT", "300")),
    )


def shutdown(cluster: ClusterEnv) -> None:
    import jax

    if cluster.multi_process or cluster.tpu:
        with contextlib.suppress(Exception):  # best effort: the process is exiting anyway
            jax.distributed.shutdown()
