"""Fixtures of the cluster tier: a namespace per test, the installed chart and operator,
the tiny model, and a directory the pods share with the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.cluster.arcx_system import ArcxSystem, start_arcx
from hack.cluster.cluster import Cluster
from hack.cluster.waiting import wait_for


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    wait_for(
        "the namespace's default ServiceAccount",
        lambda: cluster.kube.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
    )
    yield name
    cluster.kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def local_cluster(cluster: Cluster) -> Cluster:
    """The local control plane only: for tests of the node agent itself."""
    if not cluster.local:
        pytest.skip("tests the local node agent; not meaningful on an external cluster")
    return cluster


@pytest.fixture(scope="module")
def arcx(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArcxSystem]:
    """The chart installed by helm; on the local control plane the operator runs as a local
    process with the chart's ServiceAccount token (see hack/cluster/arcx_system.py).
    Module-scoped: the operator must not be running when other modules' tests (the CRD
    validation tests, tests with their own operator) share the session's cluster."""
    system = start_arcx(cluster, tmp_path_factory.mktemp("arcx-system"))
    yield system
    if system.operator:
        system.operator.stop()


@pytest.fixture(scope="session")
def shared_dir(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory both the tests and the pods see at the same path. Locally pods are host
    processes; on kind set ARCX_E2E_SHARED_DIR to a directory mounted into the nodes."""
    if cluster.local:
        return tmp_path_factory.mktemp("e2e")
    shared = os.environ.get("ARCX_E2E_SHARED_DIR")
    if not shared:
        pytest.skip("running jobs on an external cluster needs ARCX_E2E_SHARED_DIR")
    return Path(shared)


@pytest.fixture(scope="session")
def tiny_model(shared_dir: Path) -> Path:
    """The embedded default model (`arcx make-tiny-model`), made locally."""
    out = shared_dir / "tiny-model"
    if not (out / "config.json").exists():
        subprocess.run(
            [str(Path(sys.executable).parent / "arcx"), "make-tiny-model", str(out)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return out
