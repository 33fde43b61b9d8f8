"""The loader over gs:// (google-cloud-storage against fake-gcs-server on loopback): the same
batches as from the local copy of the store, and a corrupted part is caught there too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from arcx_store import layout
from arcx_store.backends.gcs import GCSStorage

from arcx.sae.loader import ActivationLoader
from arcx.sae.parts import CorruptPart
from tests.sae.stores import BuiltStore
from tests.storage.fake_gcs import fake_gcs_server

pytestmark = pytest.mark.gcs


@pytest.fixture
def gcs_copy(
    tmp_path: Path, store: BuiltStore, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GCSStorage]:
    with fake_gcs_server(tmp_path) as endpoint:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        gcs = GCSStorage.from_uri("gs://acts/runs/r1", retry_deadline=30)
        gcs._client.create_bucket(gcs.bucket_name)
        for path in sorted(store.root.rglob("*")):
            if path.is_file():
                gcs.write_bytes(path.relative_to(store.root).as_posix(), path.read_bytes())
        yield gcs


def test_gcs_store_gives_the_same_batches_as_local(gcs_copy: GCSStorage, store: BuiltStore) -> None:
    def run(source: object) -> list[np.ndarray]:
        return list(
            ActivationLoader(
                source, site="mlp_out", layer=3, batch_size=24, seed=9, shuffle_buffer_tokens=96
            )
        )

    remote, local = run(gcs_copy), run(str(store.root))
    assert len(remote) == len(local)
    for a, b in zip(remote, local, strict=True):
        np.testing.assert_array_equal(a, b)


def test_gcs_corrupted_part_is_named(gcs_copy: GCSStorage) -> None:
    key = layout.part_key(3, 0)
    data = bytearray(gcs_copy.read_bytes(key))
    data[-1] ^= 0x80
    gcs_copy.write_bytes(key, bytes(data))
    loader = ActivationLoader(gcs_copy, site="resid_post", layer=1, batch_size=8)
    with pytest.raises(CorruptPart, match=rf"unit 3 part gs://acts/runs/r1/{key}: sha256"):
        list(loader)
