"""Progress from a real activation store, written with the runner's own code
(arcx.runner.manifest, the arcx_store package) and read back by the operator's reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from arcx_store import layout as runner_layout
from arcx_store.backends import open_storage
from arcx_store.errors import StoreFormatError
from arcx_store.manifest import ensure_manifest
from arcx_store.markers import FileInfo, build_marker, commit_unit

from arcx.config import parse_config
from arcx.runner.manifest import ModelFacts, build_manifest
from arcx.runner.plan import plan_units
from arcx_operator import progress as progress_mod
from arcx_operator.progress import (
    GcsReader,
    LocalReader,
    ProgressReader,
    StoreReadError,
    reader_for,
    summarize,
)

REPO = Path(__file__).resolve().parents[2]


def test_layout_names_match_the_runner() -> None:
    # One layout module for both: the operator's reader and the runner import the same names.
    store_layout = progress_mod.layout
    assert store_layout is runner_layout
    assert store_layout.MANIFEST == runner_layout.MANIFEST
    assert store_layout.UNITS_DIR == runner_layout.UNITS_DIR
    assert store_layout.MARKER_NAME == runner_layout.MARKER_NAME
    for unit in (0, 7, 123456):
        assert store_layout.unit_of_marker(runner_layout.marker_key(unit)) == unit
    assert store_layout.unit_of_marker(runner_layout.part_key(3, 0)) is None


def _write_store(
    uri: str, num_tasks: int, unit_size: int, committed: dict[int, tuple[int, int]]
) -> None:
    """A store with a manifest for ``num_tasks`` and markers for the given units (tasks, tokens)."""
    storage = open_storage(uri)
    config = parse_config(
        {
            "model": {"source": "/models/tiny"},
            "dataset": {"source": "/tasks"},
            "extraction": {"layers": [0]},
            "output": {"uri": uri, "unitSize": unit_size},
        }
    )
    plan = plan_units(num_tasks, unit_size)
    manifest = build_manifest(
        config,
        dataset_fingerprint="f" * 16,
        plan=plan,
        model=ModelFacts(d_model=8, num_layers=2, vocab_size=32),
    )
    ensure_manifest(storage, manifest)
    for unit, (tasks, tokens) in committed.items():
        part = b"part bytes %d" % unit
        key = runner_layout.part_key(unit, 0)
        storage.write_bytes(key, part)
        marker = build_marker(
            unit,
            parts=[FileInfo.of(key, part)],
            predictions=None,
            num_tasks=tasks,
            num_sequences=tasks,
            num_tokens=tokens,
            skipped=[],
        )
        commit_unit(storage, unit, marker)


def test_local_store_progress(tmp_path: Path) -> None:
    uri = str(tmp_path / "run")
    _write_store(uri, num_tasks=10, unit_size=4, committed={0: (4, 400), 2: (2, 150)})
    reader = ProgressReader(min_interval_s=0)
    assert reader.read(uri) == {"unitsTotal": 3, "unitsCommitted": 2, "tasksDone": 6, "tokens": 550}


def test_empty_or_missing_store_reads_as_zero(tmp_path: Path) -> None:
    reader = ProgressReader(min_interval_s=0)
    assert reader.read(str(tmp_path / "nothing-yet")) == {
        "unitsTotal": 0,
        "unitsCommitted": 0,
        "tasksDone": 0,
        "tokens": 0,
    }


def test_reads_are_rate_limited_per_store(tmp_path: Path) -> None:
    uri = str(tmp_path / "run")
    _write_store(uri, num_tasks=8, unit_size=4, committed={0: (4, 10)})
    now = [100.0]
    calls: list[str] = []

    def factory(u: str) -> LocalReader:
        calls.append(u)
        return LocalReader(u)

    reader = ProgressReader(min_interval_s=5, reader_factory=factory, clock=lambda: now[0])
    assert reader.read(uri)["unitsCommitted"] == 1
    _write_store(uri, num_tasks=8, unit_size=4, committed={1: (4, 10)})
    now[0] += 4.9
    assert reader.read(uri)["unitsCommitted"] == 1, "read again before the interval passed"
    assert len(calls) == 1
    now[0] += 0.2
    assert reader.read(uri)["unitsCommitted"] == 2
    assert len(calls) == 2


def test_markers_outside_the_plan_are_not_counted() -> None:
    manifest = {"plan": {"units": [[0, 4], [4, 8]]}}
    markers = {
        0: {"tasks": 4, "tokens": 1},
        1: {"tasks": 4, "tokens": 2},
        9: {"tasks": 4, "tokens": 3},
    }
    assert summarize(manifest, markers) == {
        "unitsTotal": 2,
        "unitsCommitted": 2,
        "tasksDone": 8,
        "tokens": 3,
    }


def test_unsupported_scheme_is_a_clear_error() -> None:
    with pytest.raises(StoreReadError, match="only gs:// and paths"):
        reader_for("s3://bucket/run")


@pytest.fixture
def fake_gcs(gcs_client) -> str:
    """A bucket on the real GCS-protocol server of the root ``gcs_client`` fixture."""
    gcs_client.create_bucket("progress-test")
    return "gs://progress-test"


@pytest.mark.gcs
def test_gcs_store_progress(fake_gcs: str) -> None:
    uri = f"{fake_gcs}/runs/r1"
    _write_store(uri, num_tasks=5, unit_size=2, committed={1: (2, 30), 2: (1, 12)})
    assert isinstance(reader_for(uri), GcsReader)
    assert ProgressReader(min_interval_s=0).read(uri) == {
        "unitsTotal": 3,
        "unitsCommitted": 2,
        "tasksDone": 3,
        "tokens": 42,
    }


def test_a_unit_counts_only_by_the_runners_committed_rule(tmp_path: Path) -> None:
    """A truncated or deleted part, or a marker that does not parse, is not a committed unit
    (the runner redoes it), so the operator never reports Succeeded over such a store."""
    uri = str(tmp_path / "run")
    _write_store(uri, num_tasks=12, unit_size=3, committed={0: (3, 30), 1: (3, 30), 2: (3, 30)})
    root = tmp_path / "run"
    reader = ProgressReader(min_interval_s=0)
    assert reader.read(uri)["unitsCommitted"] == 3
    part = root / runner_layout.part_key(1, 0)
    part.write_bytes(part.read_bytes()[:3])
    (root / runner_layout.marker_key(2)).write_text("[1, 2]")  # a JSON list, not an object
    assert reader.read(uri) == {"unitsTotal": 4, "unitsCommitted": 1, "tasksDone": 3, "tokens": 30}
    (root / runner_layout.part_key(0, 0)).unlink()
    assert reader.read(uri)["unitsCommitted"] == 0


@pytest.mark.parametrize("manifest", [b"[]", b"\xff\xfe", b'{"formatVersion": 2}', b"{"])
def test_a_malformed_manifest_is_one_typed_error(tmp_path: Path, manifest: bytes) -> None:
    root = tmp_path / "run"
    root.mkdir()
    (root / runner_layout.MANIFEST).write_bytes(manifest)
    with pytest.raises(StoreFormatError, match=r"manifest\.json"):
        ProgressReader(min_interval_s=0).read(str(root))


def test_an_empty_uri_is_a_read_error_not_the_working_directory() -> None:
    with pytest.raises(StoreReadError):
        reader_for("")


def test_the_operator_reads_stores_without_numpy_or_jax() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('numpy', 'ml_dtypes', 'jax', 'google_crc32c'): sys.modules[m] = None\n"
        "import arcx_operator.progress, arcx_store.units, arcx_store.backends.local\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_plan_summary_is_read_once_it_parses(tmp_path: Path) -> None:
    from arcx_store.plan import PlanSummary, write_plan

    uri = str(tmp_path / "run")
    _write_store(uri, num_tasks=8, unit_size=4, committed={0: (4, 10)})
    reader = ProgressReader(min_interval_s=0)
    reader.read(uri)
    assert reader.plan(uri) is None, "no plan.json yet"
    assert reader.plan(str(tmp_path / "never-read")) is None
    plan = PlanSummary(8, 4, 8, 0, 100, 90, 128, 2, 1000, 0.21875, 1e6, 1.2e6, 0.3)
    write_plan(open_storage(uri), plan)
    reader.read(uri)
    assert reader.plan(uri) == plan.to_json()
    (tmp_path / "run" / runner_layout.PLAN).write_bytes(b"{broken")
    reader.read(uri)
    assert reader.plan(uri) == plan.to_json(), "a plan once read is kept, not re-read"
    reader.forget(uri)
    assert reader.read(uri)["unitsCommitted"] == 1, "a malformed plan never hides progress"
    assert reader.plan(uri) is None
