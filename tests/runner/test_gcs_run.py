"""`arcx run` into gs:// on fake-gcs-server (loopback), through a proxy injecting faults.

The FaultProxy (tests/storage/fake_gcs.py) answers every 5th request with a 503 and drops
the connection of every 13th while the job runs; google-cloud-storage retries them. The committed
store must be byte-identical to the same job written to a local directory.
"""

from __future__ import annotations

import os

import pytest
from arcx_store import layout
from arcx_store.backends.gcs import GCSStorage

from arcx.runner.verify import verify_store
from tests.runner import harness
from tests.storage.fake_gcs import gcs_with_proxy

pytestmark = [pytest.mark.gcs, pytest.mark.slow, pytest.mark.multiprocess]


def test_two_processes_write_to_gcs_through_faults(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache, monkeypatch
):
    reference = harness.committed_files(run_store(2, 1))
    with gcs_with_proxy(tmp_path) as (endpoint, proxy):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        admin = GCSStorage.from_uri("gs://runs/job-1", retry_deadline=30)
        admin._client.create_bucket("runs")
        cfg = harness.write_config(
            tmp_path / "job.yaml", model=tiny_model, tasks=arc_tasks, out="gs://runs/job-1"
        )
        env = harness.base_env(
            jax_cache, STORAGE_EMULATOR_HOST=endpoint, ARCX_GCS_RETRY_DEADLINE="60"
        )

        proxy.fail_every, proxy.drop_every = 5, 13  # every 5th request a 503, every 13th dropped
        try:
            codes = harness.run(cfg, 2, 1, env, tmp_path / "logs")
        finally:
            proxy.fail_every = proxy.drop_every = 0
        assert codes == [0, 0], harness.logs(tmp_path / "logs")[-3000:]
        kinds = {i.split()[0] for i in proxy.injected}
        assert {"503", "drop"} <= kinds, proxy.injected

        report = verify_store(admin)
        assert report.ok, report.problems
        got = {
            k: admin.read_bytes(k)
            for k in admin.list()
            if k.startswith((f"{layout.UNITS_DIR}/", f"{layout.PREDICTIONS_DIR}/"))
        }
        assert got == reference
        assert os.environ["STORAGE_EMULATOR_HOST"] == endpoint
