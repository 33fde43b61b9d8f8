"""``arcx.open_store``: the notebook view of a store a real run wrote, checked against the
test harness's own reading of the parts, and the worked example in docs/sae.md run as a
doctest."""

from __future__ import annotations

import doctest
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from arcx_store.backends.gcs import GCSStorage
from arcx_store.layout import PART_SUFFIX, marker_key

import arcx
from tests.runner import harness

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sae.md"


@pytest.fixture(scope="module")
def store(run_store) -> Path:
    return run_store(2, 1)


pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def test_every_sequence_matches_the_parts_byte_for_byte(store: Path) -> None:
    view = arcx.open_store(str(store))
    truth = harness.sequences(store)
    assert view.names == [f"{s}.{layer}" for s in view.sites for layer in view.layers]
    seen = set()
    for seq in view:
        want = truth[(seq.task_id, seq.test_index)]
        assert seq.token_ids.tobytes() == want["token_ids"]
        for name in view.names:
            assert seq[name].shape == (len(seq), view.d_model)
            assert seq[name].tobytes() == want[name]
        seen.add((seq.task_id, seq.test_index))
    assert seen == set(truth) and len(view) == len(truth)
    assert sorted(view.tasks) == sorted({t for t, _ in truth})


def test_token_strings_filter_and_one_sequence(store: Path) -> None:
    view = arcx.open_store(str(store), verify=True)
    tok = view.tokenizer
    seq = view.sequence(view.tasks[1], names=["mlp_out.3"])
    assert list(seq.activations) == ["mlp_out.3"]
    assert seq.tokens == [tok.id_to_token(int(i)) for i in seq.token_ids]
    picked = list(view.sequences(task_ids=view.tasks[2:4]))
    assert {s.task_id for s in picked} == set(view.tasks[2:4])
    with pytest.raises(KeyError, match="not in"):
        view.sequence("no-such-task")
    with pytest.raises(KeyError, match="was not requested"):
        seq["resid_post.1"]


def test_a_unit_without_its_marker_is_invisible(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    full = arcx.open_store(str(copy))
    (copy / marker_key(0)).unlink()
    less = arcx.open_store(str(copy))
    assert len(less) < len(full)
    assert all(s.unit != 0 for s in less)


def test_the_worked_example_in_docs_sae_md(store: Path) -> None:
    text = DOCS.read_text()
    block = re.search(r"<!-- notebook-example -->\n```python\n(.*?)```", text, re.S)
    assert block, "docs/sae.md lost its notebook example"
    test = doctest.DocTestParser().get_doctest(
        block.group(1), {"uri": str(store), "np": np}, "docs/sae.md", str(DOCS), 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 5


@pytest.mark.gcs
def test_a_gs_store_reads_the_same_as_the_local_one(
    store: Path, gcs_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = gcs_client.create_bucket("notebook")
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        bucket.blob(f"runs/r1/{path.relative_to(store).as_posix()}").upload_from_filename(path)
    whole: list[str] = []
    ranged: list[tuple[str, int]] = []
    read_bytes, read_range = GCSStorage.read_bytes, GCSStorage.read_range

    def recording_read_bytes(self: GCSStorage, key: str) -> bytes:
        whole.append(key)
        return read_bytes(self, key)

    def recording_read_range(self: GCSStorage, key: str, start: int, length: int) -> bytes:
        data = read_range(self, key, start, length)
        ranged.append((key, len(data)))
        return data

    monkeypatch.setattr(GCSStorage, "read_bytes", recording_read_bytes)
    monkeypatch.setattr(GCSStorage, "read_range", recording_read_range)
    local, remote = arcx.open_store(str(store)), arcx.open_store("gs://notebook/runs/r1")
    # Opening reads headers and offsets by range: no part is fetched whole, and one
    # sequence's one tensor costs its rows, not its part.
    assert not [k for k in whole if k.endswith(PART_SUFFIX)], whole
    first = remote._index[0]
    ranged.clear()
    one = remote.sequence(first.task_id, first.test_index, names=remote.names[:1])
    row_bytes = one[remote.names[0]].nbytes
    act_reads = [n for k, n in ranged if k == first.part.key and n == row_bytes]
    assert act_reads and sum(n for _, n in ranged) < first.part.size
    assert remote.tasks == local.tasks and remote.names == local.names
    for a, b in zip(local, remote, strict=True):
        assert (a.task_id, a.test_index) == (b.task_id, b.test_index)
        assert a.token_ids.tobytes() == b.token_ids.tobytes()
        assert all(a[n].tobytes() == b[n].tobytes() for n in local.names)
