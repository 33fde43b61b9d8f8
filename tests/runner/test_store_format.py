"""The activation store's files: parts, markers, manifest checks, verify and inspect.

Stores here are written with the runner's own functions onto a real filesystem; the
official safetensors reader checks the part files."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest
import safetensors
from arcx_store import layout, markers, parts
from arcx_store.backends.local import LocalStorage
from arcx_store.errors import StorageError

from arcx.config import parse_config
from arcx.runner import manifest
from arcx.runner.inspect_store import format_summary, summarize_store, summary_json
from arcx.runner.plan import plan_units
from arcx.runner.verify import verify_store

CONFIG = {
    "model": {"source": "/models/tiny"},
    "dataset": {"source": "/data/tasks"},
    "extraction": {"layers": [1], "sites": ["resid_post"], "dtype": "bfloat16"},
    "output": {"uri": "/out", "unitSize": 2},
}


def make_part(n_tokens: int, seed: int) -> tuple[bytes, dict]:
    rng = np.random.default_rng(seed)
    tensors = {
        "resid_post.1": rng.standard_normal((n_tokens, 8)).astype(ml_dtypes.bfloat16),
        layout.TOKEN_IDS: rng.integers(0, 100, n_tokens).astype(np.int32),
        layout.OFFSETS: np.array([0, n_tokens // 2, n_tokens], np.int64),
    }
    meta = {
        "unit": "0",
        "positions": "all",
        "sequences": [["t1", 0], ["t2", 0]],
        "task_ids": ["t1", "t2"],
    }
    return parts.encode_part(tensors, meta), tensors


def build_store(tmp_path, units: int = 2) -> LocalStorage:
    store = LocalStorage(tmp_path / "store")
    config = parse_config(CONFIG)
    plan = plan_units(units * 2, 2)
    m = manifest.build_manifest(
        config, dataset_fingerprint="f" * 64, plan=plan, model=manifest.ModelFacts(8, 2, 64)
    )
    assert manifest.ensure_manifest(store, m) is True
    for u in range(units):
        infos = []
        for host in range(2):
            data, _ = make_part(6, seed=u * 10 + host)
            key = layout.part_key(u, host)
            store.write_bytes(key, data)
            infos.append(markers.FileInfo.of(key, data))
        preds = b'{"correct": true, "taskId": "t1"}\n{"correct": false, "taskId": "t2"}\n'
        store.write_bytes(layout.predictions_key(u), preds)
        marker = markers.build_marker(
            u, parts=infos, predictions=markers.FileInfo.of(layout.predictions_key(u), preds),
            num_tasks=2, num_sequences=2, num_tokens=12, skipped=[],
        )  # fmt: skip
        markers.commit_unit(store, u, marker)
    return store


def test_parts_are_read_by_the_official_reader_with_metadata(tmp_path):
    data, tensors = make_part(6, seed=1)
    path = tmp_path / "p.safetensors"
    path.write_bytes(data)
    with safetensors.safe_open(str(path), framework="flax") as f:
        assert sorted(f.keys()) == ["offsets", "resid_post.1", "token_ids"]
        meta = f.metadata()
        assert meta["format"] == layout.SHARD_FORMAT
        assert json.loads(meta["sequences"]) == [["t1", 0], ["t2", 0]]
        got = np.asarray(f.get_tensor("resid_post.1"))
    assert got.dtype == ml_dtypes.bfloat16
    assert got.tobytes() == tensors["resid_post.1"].tobytes()
    back, meta2 = parts.decode_part(data)
    assert all(back[k].tobytes() == tensors[k].tobytes() for k in tensors)
    assert meta2 == meta


def test_part_bytes_do_not_depend_on_dict_order():
    a, t = make_part(4, seed=3)
    reordered = parts.encode_part(
        dict(reversed(list(t.items()))),
        {
            "task_ids": ["t1", "t2"],
            "sequences": [["t1", 0], ["t2", 0]],
            "positions": "all",
            "unit": "0",
        },
    )
    assert reordered == a


def test_a_store_written_whole_verifies_and_inspects(tmp_path):
    store = build_store(tmp_path)
    report = verify_store(store)
    assert report.ok, report.problems
    assert (report.units_total, report.units_committed, report.files_checked) == (2, 2, 6)
    s = summarize_store(store)
    assert (s.tasks, s.tokens, s.predictions, s.correct) == (4, 24, 4, 2)
    assert s.accuracy == 0.5
    assert s.ideal_bytes_per_token == 16


def test_verify_catches_a_flipped_byte(tmp_path):
    store = build_store(tmp_path)
    path = tmp_path / "store" / layout.part_key(1, 0)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    report = verify_store(store)
    assert not report.ok
    assert len(report.problems) == 1
    assert "unit 1" in report.problems[0] and "sha256" in report.problems[0]
    # sizes alone cannot see it
    assert verify_store(store, check_hashes=False).ok


def test_verify_lists_missing_markers_parts_and_strays(tmp_path):
    store = build_store(tmp_path, units=2)
    (tmp_path / "store" / layout.marker_key(0)).unlink()
    (tmp_path / "store" / layout.part_key(1, 1)).unlink()
    store.write_bytes(layout.part_key(1, 7), b"old attempt")
    report = verify_store(store)
    text = "\n".join(report.problems)
    assert "unit 0: not committed" in text
    assert f"{layout.part_name(1)}: missing" in text
    assert any("stray" in w for w in report.warnings)
    assert report.units_committed == 0


def test_verify_of_something_that_is_not_a_store(tmp_path):
    report = verify_store(LocalStorage(tmp_path / "empty"))
    assert not report.ok and f"{layout.MANIFEST} is missing" in report.problems[0]


def test_manifest_from_another_job_is_refused_with_what_differs(tmp_path):
    store = build_store(tmp_path)
    config = parse_config({**CONFIG, "extraction": {**CONFIG["extraction"], "layers": [0, 1]}})
    other = manifest.build_manifest(
        config,
        dataset_fingerprint="f" * 64,
        plan=plan_units(4, 2),
        model=manifest.ModelFacts(8, 2, 64),
    )
    with pytest.raises(manifest.StoreMismatch, match="config hash"):
        manifest.ensure_manifest(store, other)
    same_config = parse_config(CONFIG)
    other_data = manifest.build_manifest(
        same_config,
        dataset_fingerprint="e" * 64,
        plan=plan_units(4, 2),
        model=manifest.ModelFacts(8, 2, 64),
    )
    with pytest.raises(manifest.StoreMismatch, match="dataset"):
        manifest.ensure_manifest(store, other_data)
    # the same job (another output location, another slice count) resumes
    moved = parse_config(
        {**CONFIG, "output": {"uri": "/elsewhere", "unitSize": 2}, "parallelism": {"slices": 3}}
    )
    again = manifest.build_manifest(
        moved,
        dataset_fingerprint="f" * 64,
        plan=plan_units(4, 2),
        model=manifest.ModelFacts(8, 2, 64),
    )
    assert manifest.ensure_manifest(store, again) is False


def test_a_marker_is_written_once_and_a_different_one_is_an_error(tmp_path):
    store = LocalStorage(tmp_path)
    marker = markers.build_marker(
        3, parts=[], predictions=None, num_tasks=0, num_sequences=0, num_tokens=0, skipped=[]
    )
    markers.commit_unit(store, 3, marker)
    markers.commit_unit(store, 3, marker)  # identical: fine (a retried commit)
    other = markers.build_marker(
        3, parts=[], predictions=None, num_tasks=1, num_sequences=0, num_tokens=0, skipped=[]
    )
    with pytest.raises(StorageError, match="already exists with other content"):
        markers.commit_unit(store, 3, other)
    assert layout.unit_of_marker(layout.marker_key(3)) == 3
    assert layout.unit_of_marker(layout.part_key(3, 0)) is None


def test_strays_of_an_older_attempt_are_removed_after_commit(tmp_path):
    store = build_store(tmp_path, units=1)
    store.write_bytes(layout.part_key(0, 5), b"from 6 hosts")
    removed = markers.remove_strays(store, 0, markers.read_marker(store, 0))
    assert removed == [layout.part_key(0, 5)]
    assert verify_store(store).ok and not verify_store(store).warnings


def test_a_refusal_names_the_config_fields_that_differ(tmp_path):
    store = build_store(tmp_path)
    changed = {**CONFIG, "extraction": {**CONFIG["extraction"], "layers": [0, 1]}}
    other = manifest.build_manifest(
        parse_config(changed),
        dataset_fingerprint="f" * 64,
        plan=plan_units(4, 2),
        model=manifest.ModelFacts(8, 2, 64),
    )
    with pytest.raises(
        manifest.StoreMismatch, match=r"config fields that differ: extraction\.layers"
    ):
        manifest.ensure_manifest(store, other)


def test_inspect_reports_damaged_and_redone_units(tmp_path):
    store = build_store(tmp_path)
    part = tmp_path / "store" / layout.part_key(1, 0)
    part.write_bytes(part.read_bytes()[:10])
    s = summarize_store(store)
    assert s.units_committed == 1 and list(s.damaged) == [1] and "has 10 bytes" in s.damaged[1]
    assert "damaged    unit 1" in format_summary(s)
    # a unit whose new marker records why it was redone
    marker = json.loads(store.read_bytes(layout.marker_key(0)))
    marker["redone"] = "the marker does not parse: ..."
    (tmp_path / "store" / layout.marker_key(0)).write_text(json.dumps(marker))
    assert summary_json(summarize_store(store))["unitsRedone"] == {"0": marker["redone"]}


def test_the_manifest_and_inspect_say_whether_answers_are_scored(tmp_path):
    store = build_store(tmp_path)
    s = summarize_store(store)
    assert s.manifest["scores"] is True and summary_json(s)["scores"] is True
    assert "scores       yes" in format_summary(s)
    unscored = {**CONFIG, "extraction": {**CONFIG["extraction"], "scoring": False}}
    m = manifest.build_manifest(
        parse_config(unscored),
        dataset_fingerprint="f" * 64,
        plan=plan_units(4, 2),
        model=manifest.ModelFacts(8, 2, 64),
    )
    assert m["scores"] is False
