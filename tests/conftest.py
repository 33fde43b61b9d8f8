"""Root fixtures shared by several test areas.

``cluster``: a Kubernetes API to test against, for the whole session. With
``ARCX_E2E_KUBECONFIG`` set it is that cluster (kind, for instance); otherwise the local
control plane of ``hack/cluster`` is started (real etcd, kube-apiserver, controller manager,
scheduler and JobSet controller, built by ``hack/tools/build.sh``) with the real node:
containerd and a kubelet running the project's images (hack/cluster/node.py; needs root).
``ARCX_E2E_NODE=agent`` puts the process-running test node agent in the kubelet's place.
When the binaries are not built, tests that use it are skipped, except under CI (``CI``
set), where the missing build is an error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hack.cluster.cluster import Cluster, external_cluster, local_cluster  # noqa: E402
from hack.cluster.images import ImageBuildError  # noqa: E402
from hack.cluster.tools import ToolsMissing  # noqa: E402


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running cluster: ``.kubeconfig`` (admin), ``.kube`` (JSON client), ``.kubectl(...)``,
    ``.helm(...)``, ``.local`` (True for the local control plane)."""
    kubeconfig = os.environ.get("ARCX_E2E_KUBECONFIG")
    if kubeconfig:
        yield external_cluster(Path(kubeconfig))
        return
    try:
        real_node = os.environ.get("ARCX_E2E_NODE", "real") != "agent"
        cm = local_cluster(tmp_path_factory.mktemp("control-plane"), real_node=real_node)
        c = cm.__enter__()
    except (ToolsMissing, ImageBuildError) as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    try:
        yield c
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture(scope="session")
def control_plane(cluster: Cluster) -> Cluster:
    """Alias of ``cluster`` (``.kubeconfig``, ``.kubectl(...)``, ``.kube``)."""
    return cluster


@pytest.fixture
def gcs_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    """A google-cloud-storage client for a fresh, in-memory fake-gcs-server on loopback.

    ``STORAGE_EMULATOR_HOST`` points arcx (and the operator's progress reader) at it, with
    anonymous credentials. The server is the real GCS-protocol one built from its Go module
    (tests/storage/fake_gcs.py), so preconditions such as ``ifGenerationMatch`` hold."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from tests.storage.fake_gcs import fake_gcs_server

    with fake_gcs_server(tmp_path) as endpoint:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        yield storage.Client(
            project="arcx-local",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
