"""The persistent XLA compilation cache: a restarted pod loads its programs instead of
compiling them again.

The location is ``engine.compilationCache`` (a path, e.g. on a volume, or ``gs://``), else
the pod's ``JAX_COMPILATION_CACHE_DIR``; neither set, nothing is cached. JAX by default only
caches programs that took over a second to compile; the runner's gather and small-bucket
programs compile faster than that but add up over a restart, so every program is cached
(both thresholds 0) unless the pod's environment sets its own.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

from arcx.config import ConfigError

ENV_DIR = "JAX_COMPILATION_CACHE_DIR"
ENV_MIN_SECS = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
ENV_MIN_BYTES = "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"


def cache_location(configured: str, environ: Mapping[str, str]) -> str:
    """Where the cache lives: the job config's value, else the pod's; "" = no cache."""
    return (configured or environ.get(ENV_DIR, "")).strip()


def configure_compilation_cache(configured: str, environ: Mapping[str, str] | None = None) -> str:
    """Point JAX's persistent cache at the configured location (before the first compile).

    Returns the location ("" when none). A ``gs://`` location needs ``gcsfs`` (through
    ``etils.epath``, which JAX uses for remote caches); without it the job would silently
    compile everything on every restart, so that is a configuration error.
    """
    import jax

    env = os.environ if environ is None else environ
    where = cache_location(configured, env)
    if not where:
        return ""
    if where.startswith("gs://"):
        missing = [m for m in ("etils", "gcsfs") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"engine.compilationCache: {where} needs {' and '.join(missing)} in the job "
                "image; use a path on a volume instead"
            )
    elif "://" in where:
        raise ConfigError(f"engine.compilationCache: {where!r} is neither a path nor gs://")
    else:
        os.makedirs(where, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", where)
    if ENV_MIN_SECS not in env:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if ENV_MIN_BYTES not in env:
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return where
