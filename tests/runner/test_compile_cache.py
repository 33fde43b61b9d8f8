"""The persistent compilation cache is set from the job config or the pod, caching every program."""

from __future__ import annotations

import importlib.util

import jax
import pytest

from arcx.config import ConfigError
from arcx.runner.compile_cache import cache_location, configure_compilation_cache

OPTIONS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


@pytest.fixture
def restore_jax_config():
    saved = {k: getattr(jax.config, k) for k in OPTIONS}
    yield
    for k, v in saved.items():
        jax.config.update(k, v)


def test_the_job_config_wins_over_the_pod_and_nothing_set_means_no_cache():
    assert cache_location("/cfg", {"JAX_COMPILATION_CACHE_DIR": "/pod"}) == "/cfg"
    assert cache_location("", {"JAX_COMPILATION_CACHE_DIR": "/pod"}) == "/pod"
    assert cache_location("", {}) == ""
    assert configure_compilation_cache("", {}) == ""


def test_every_program_is_cached_unless_the_pod_says_otherwise(tmp_path, restore_jax_config):
    where = configure_compilation_cache(str(tmp_path / "cache"), {})
    assert where == str(tmp_path / "cache") and (tmp_path / "cache").is_dir()
    assert jax.config.jax_compilation_cache_dir == where
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)
    configure_compilation_cache(
        str(tmp_path / "c2"), {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2"}
    )
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 2.0


def test_unusable_locations_are_config_errors(restore_jax_config):
    with pytest.raises(ConfigError, match=r"engine\.compilationCache"):
        configure_compilation_cache("s3://bucket/cache", {})
    if importlib.util.find_spec("gcsfs") is None:
        with pytest.raises(ConfigError, match="gcsfs"):
            configure_compilation_cache("gs://bucket/cache", {})
