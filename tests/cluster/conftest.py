"""Fixtures of the cluster tier: a namespace per test, the installed chart and operator,
the tiny model, and a directory the pods share with the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.cluster.arcx_system import ArcxSystem, start_arcx
from hack.cluster.cluster import Cluster
from hack.cluster.volumes import drop_namespace, make_namespace


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    shared = request.getfixturevalue("shared_dir") if cluster.runs_images else None
    make_namespace(cluster.kube, name, shared, restricted=not cluster.node_agent)
    yield name
    drop_namespace(cluster.kube, name, shared is not None)


@pytest.fixture
def local_cluster(cluster: Cluster) -> Cluster:
    """The local control plane only: for tests of the node agent itself."""
    if not cluster.node_agent:
        pytest.skip("tests the local node agent; not meaningful on another node")
    return cluster


@pytest.fixture(scope="module")
def arcx(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ArcxSystem]:
    """The chart installed by helm: on the real node and kind its Deployment runs the
    operator image; with the node agent the operator runs as a local process with the chart's
    ServiceAccount token (see hack/cluster/arcx_system.py). Module-scoped: the operator must
    not be running when other modules' tests (the CRD validation tests, tests with their own
    operator) share the session's cluster."""
    shared = request.getfixturevalue("shared_dir") if cluster.runs_images else None
    system = start_arcx(cluster, tmp_path_factory.mktemp("arcx-system"), shared=shared)
    yield system
    system.stop()


@pytest.fixture(scope="session")
def shared_dir(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory both the tests and the pods see at the same path. On the real node the
    pods mount it through a claim (hack/cluster/volumes.py) and write as uid 65532, so it is
    world-writable and outside pytest's 0700 temporary tree; with the node agent pods are
    host processes; on kind set ARCX_E2E_SHARED_DIR to a directory mounted into the nodes."""
    if cluster.real_node:
        path = Path(tempfile.mkdtemp(prefix="arcx-e2e-", dir="/tmp"))
        path.chmod(0o777)
        yield path
        shutil.rmtree(path, ignore_errors=True)
        return
    if cluster.local:
        yield tmp_path_factory.mktemp("e2e")
        return
    shared = os.environ.get("ARCX_E2E_SHARED_DIR")
    if not shared:
        pytest.skip("running jobs on an external cluster needs ARCX_E2E_SHARED_DIR")
    yield Path(shared)


@pytest.fixture(scope="session")
def tiny_model(cluster: Cluster, shared_dir: Path) -> Path:
    """The embedded default model (`arcx make-tiny-model`), made locally."""
    out = shared_dir / "tiny-model"
    if not (out / "config.json").exists():
        subprocess.run(
            [str(Path(sys.executable).parent / "arcx"), "make-tiny-model", str(out)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        if cluster.runs_images:  # the pods read it as uid 65532
            for p in [out, *out.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
    return out
