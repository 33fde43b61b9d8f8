"""`arcx run` end to end: real processes, the tiny model, bundled ARC tasks, a real store.

Multi-process runs use jax.distributed on loopback, started with exactly the pod
environment contract (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), with 1
or 2 CPU devices per process (XLA_FLAGS=--xla_force_host_platform_device_count).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from arcx_store import layout

from arcx import exitcodes
from tests.runner import harness

pytestmark = pytest.mark.slow


def arcx(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcx.cli", *args], capture_output=True, text=True, env=env
    )


def test_one_process_writes_a_store_that_verifies(run_store, arc_tasks):
    store = run_store(1, 1)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    assert len(manifest["plan"]["units"]) == 8 and manifest["dModel"] == 64
    seqs = harness.sequences(store)
    markers = [json.loads(p.read_text()) for p in harness.marker_paths(store)]
    assert len(markers) == 8
    skipped = [s for m in markers for s in m["skipped"]]
    # every test input of the 8 tasks is either stored or reported as too long
    assert len(seqs) + len(skipped) == sum(m["sequences"] + len(m["skipped"]) for m in markers) == 8
    assert skipped and all("maxSeqLen" in s["reason"] and s["length"] > 1152 for s in skipped)
    for rows in seqs.values():  # all positions, bf16 [n, 64], token ids aligned
        n = len(rows["token_ids"]) // 4
        assert len(rows["resid_post.1"]) == len(rows["mlp_out.3"]) == n * 64 * 2
    verify = arcx("verify", str(store))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "8/8 units committed and intact" in verify.stdout
    inspect = arcx("inspect", "--json", str(store))
    summary = json.loads(inspect.stdout)
    assert summary["tasks"] == 8 and summary["sequences"] == len(seqs)
    assert summary["predictions"] == len(seqs) and summary["accuracy"] is not None
    # every stored row carries exactly d_model x 2 bytes per site and layer, plus a small header
    assert 128 <= summary["bytesPerTokenPerSite"] < 128 * 1.1


@pytest.mark.multiprocess
@pytest.mark.parametrize(("processes", "devices"), [(2, 1), (4, 1), (2, 2)])
def test_several_processes_store_the_same_activations_as_one(run_store, processes, devices):
    one = harness.sequences(run_store(1, 1))
    many_store = run_store(processes, devices)
    many = harness.sequences(many_store)
    assert many.keys() == one.keys()
    assert many == one  # bit for bit, every tensor of every sequence
    parts = sorted(p.name for p in (many_store / layout.unit_dir(0)).glob(f"{layout.PART_PREFIX}*"))
    assert parts == [layout.part_name(h) for h in range(processes)]
    assert harness.committed_files(many_store).keys() >= {
        layout.predictions_key(u) for u in range(8)
    }
    for u in range(8):
        assert (many_store / layout.predictions_key(u)).read_bytes() == (
            run_store(1, 1) / layout.predictions_key(u)
        ).read_bytes()


def test_rerun_skips_committed_units_and_redoes_uncommitted_ones(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache
):
    reference = harness.committed_files(run_store(1, 1))
    store = tmp_path / "store"
    shutil.copytree(run_store(1, 1), store)
    # unit 2 loses its marker (a crash before commit) and its part is garbage
    (store / layout.marker_key(2)).unlink()
    (store / layout.part_key(2, 0)).write_bytes(b"half-written")
    cfg = harness.write_config(
        tmp_path / "job.yaml", model=tiny_model, tasks=arc_tasks, out=str(store)
    )
    codes = harness.run(cfg, 1, 1, harness.base_env(jax_cache), tmp_path / "logs")
    assert codes == [0]
    log = harness.logs(tmp_path / "logs")
    assert '"unitsAlreadyCommitted": 7' in log and '"unitsToDo": 1' in log
    assert harness.committed_files(store) == reference


def test_generation_writes_parsed_predictions(tmp_path, tiny_model, arc_tasks, jax_cache):
    cfg = harness.write_config(
        tmp_path / "job.yaml", model=tiny_model, tasks=arc_tasks, out=str(tmp_path / "store"),
        generation={"maxNewTokens": 8}, extraction={"positions": "last"}, dataset={"maxTasks": 4},
    )  # fmt: skip
    assert harness.run(cfg, 1, 1, harness.base_env(jax_cache), tmp_path / "logs") == [0]
    rows = [
        json.loads(x)
        for p in sorted((tmp_path / "store/predictions").glob("*.jsonl"))
        for x in p.read_text().splitlines()
    ]
    assert rows and all(r["mode"] == "generation" and "teacherForcedCorrect" in r for r in rows)
    # a random tiny model does not write grids: every row says why it could not be parsed
    assert all(r["prediction"] is None and r["error"] for r in rows)
    for s in harness.sequences(tmp_path / "store").values():
        assert len(s["token_ids"]) == 4  # positions 'last': one token per sequence


# -- bad inputs ---------------------------------------------------------------------------


def run_one(tmp_path: Path, cfg: Path, jax_cache: Path, **env: str) -> tuple[int, str]:
    code = harness.run(cfg, 1, 1, harness.base_env(jax_cache, **env), tmp_path / "logs")[0]
    return code, harness.logs(tmp_path / "logs")


def test_invalid_config_field_exits_78_naming_the_field(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        "model: {source: /m}\ndataset: {source: /d}\nextraction: {layers: [0], positions: everywhere}\n"
        "output: {uri: /o}\n"
    )
    proc = arcx("run", "--config", str(cfg))
    assert proc.returncode == exitcodes.CONFIG_ERROR
    assert "extraction.positions" in proc.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"model": {"source": "/nonexistent/model"}},
            "model.source: /nonexistent/model is not a directory",
        ),
        ({"dataset": {"source": "/nonexistent/tasks.jsonl"}}, "dataset.source"),
        ({"extraction": {"layers": [7]}}, "extraction.layers"),
        ({"extraction": {"positions": "answer", "teacherForcing": False}}, "extraction.positions"),
    ],
)
def test_unusable_inputs_exit_78_with_a_clear_message(
    tmp_path, tiny_model, arc_tasks, jax_cache, change, message
):
    cfg = harness.write_config(
        tmp_path / "job.yaml", model=tiny_model, tasks=arc_tasks, out=str(tmp_path / "store")
    )
    import yaml

    data = yaml.safe_load(cfg.read_text())
    for k, v in change.items():
        data[k] = {**data[k], **v}
    cfg.write_text(yaml.safe_dump(data))
    code, log = run_one(tmp_path, cfg, jax_cache)
    assert code == exitcodes.CONFIG_ERROR, log[-2000:]
    assert message in log
    assert not (tmp_path / "store" / layout.UNITS_DIR).exists()


def test_store_from_another_config_is_refused(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache
):
    store = tmp_path / "store"
    shutil.copytree(run_store(1, 1), store)
    before = harness.committed_files(store)
    cfg = harness.write_config(
        tmp_path / "job.yaml",
        model=tiny_model,
        tasks=arc_tasks,
        out=str(store),
        extraction={"layers": [0]},
    )
    code, log = run_one(tmp_path, cfg, jax_cache)
    assert code == exitcodes.CONFIG_ERROR
    assert "written by another job: the job configuration (config hash) differs" in log
    assert harness.committed_files(store) == before  # nothing lost


@pytest.mark.gcs
def test_unreachable_store_fails_clearly_and_writes_nothing(
    tmp_path, tiny_model, arc_tasks, jax_cache
):
    from tests.storage.fake_gcs import free_port

    cfg = harness.write_config(
        tmp_path / "job.yaml", model=tiny_model, tasks=arc_tasks, out="gs://bucket/run"
    )
    code, log = run_one(
        tmp_path, cfg, jax_cache,
        STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}", ARCX_GCS_RETRY_DEADLINE="2",
    )  # fmt: skip
    assert code == exitcodes.CRASH
    assert "storage error" in log and "gs://bucket" in log


def test_two_slices_share_the_units_and_one_store(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache
):
    """Each slice is its own JAX cluster and does units u with u % slices == its index."""
    store = tmp_path / "store"
    cfg = harness.write_config(
        tmp_path / "job.yaml",
        model=tiny_model,
        tasks=arc_tasks,
        out=str(store),
        parallelism={"slices": 2},
    )
    assert harness.run(
        cfg, 1, 1, harness.base_env(jax_cache, ARCX_SLICE_INDEX="1"), tmp_path / "s1"
    ) == [0]
    assert sorted(p.parent.name for p in harness.marker_paths(store)) == [
        f"{u:06d}" for u in (1, 3, 5, 7)
    ]
    assert harness.run(
        cfg, 1, 1, harness.base_env(jax_cache, ARCX_SLICE_INDEX="0"), tmp_path / "s0"
    ) == [0]
    assert harness.committed_files(store) == harness.committed_files(run_store(1, 1))


def test_tensor_parallel_mesh_runs_and_matches_within_rounding(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache
):
    """mesh.model=2 on one process with 2 CPU devices: heads and MLP split over the
    'model' axis (sums in another order, so equal up to bf16 rounding, not bit for bit);
    each data shard is written once although two devices hold it."""
    import ml_dtypes
    import numpy as np

    cfg = harness.write_config(
        tmp_path / "job.yaml",
        model=tiny_model,
        tasks=arc_tasks,
        out=str(tmp_path / "store"),
        mesh={"model": 2},
    )
    assert harness.run(cfg, 1, 2, harness.base_env(jax_cache), tmp_path / "logs") == [0]
    got, ref = harness.sequences(tmp_path / "store"), harness.sequences(run_store(1, 1))
    assert got.keys() == ref.keys()
    for key, tensors in ref.items():
        assert got[key]["token_ids"] == tensors["token_ids"]
        for name in ("resid_post.1", "mlp_out.3"):
            a = np.frombuffer(got[key][name], ml_dtypes.bfloat16).astype(np.float32)
            b = np.frombuffer(tensors[name], ml_dtypes.bfloat16).astype(np.float32)
            np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2)
