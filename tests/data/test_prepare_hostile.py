"""arcx prepare on hostile or broken input: each bad row is rejected alone, a bad source fails
with one line and exit 78, and nothing that was good is lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arcx import exitcodes
from arcx.cli import main
from arcx.tasks import sources
from arcx.tasks.prepare import prepare
from arcx.tasks.sources import SourceError
from arcx.tasks.store import TaskStore

DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on it


def rejected(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]


def error_lines(stderr: str) -> list[str]:
    """The CLI's error lines (stderr also carries JSON progress events); never a traceback."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("arcx prepare:")]


def task(n: int) -> dict:
    """A small valid ARC-AGI task whose content depends on ``n`` (0..9)."""
    return {"train": [{"input": [[n]], "output": [[n, n]]}], "test": [{"input": [[n, 1]]}]}


def stored_ids(out: Path) -> list[str | None]:
    return [t.metadata.get("source_id") for t in TaskStore.open(str(out)).iter_tasks()]


# -- nesting -----------------------------------------------------------------------------


def test_deep_jsonl_row_is_rejected_and_the_rest_kept(tmp_path: Path, barc_row) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join([json.dumps(barc_row(0)), DEEP, json.dumps(barc_row(1))]) + "\n")
    summary = prepare(str(path), str(tmp_path / "store"))
    assert (summary.rows_read, summary.tasks_written, summary.rejected) == (3, 2, 1)
    (bad,) = rejected(tmp_path / "store")
    assert bad["row"] == 2 and "nested too deeply" in bad["reason"]


def test_deep_element_of_a_json_list_is_that_row_only(tmp_path: Path, barc_row) -> None:
    path = tmp_path / "rows.json"
    path.write_text(f"[{json.dumps(barc_row(0))}, {DEEP}, {json.dumps(barc_row(1))}]")
    summary = prepare(str(path), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (2, 1)
    assert rejected(tmp_path / "store")[0]["row"] == 2


def test_deep_task_file_in_a_directory(tmp_path: Path) -> None:
    d = tmp_path / "tasks"
    d.mkdir()
    (d / "a.json").write_text(json.dumps(task(1)))
    (d / "b.json").write_text('{"train": ' + DEEP + "}")
    summary = prepare(str(d), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (1, 1)
    assert rejected(tmp_path / "store")[0]["source_id"] == "b"


def test_deep_task_in_a_challenges_file(tmp_path: Path) -> None:
    text = '{"aaa": ' + json.dumps(task(1)) + ', "bbb": {"train": ' + DEEP + "}}"
    (tmp_path / "c_challenges.json").write_text(text)
    summary = prepare(str(tmp_path / "c_challenges.json"), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (1, 1)
    assert stored_ids(tmp_path / "store") == ["aaa"]


def test_deep_metadata_that_parses_is_refused_not_stored(tmp_path: Path, barc_row) -> None:
    """Seeds nested 900 deep parse, but json.dumps of the task would hit the recursion limit."""
    path = tmp_path / "rows.jsonl"
    deep_seeds = {**barc_row(1), "seeds": json.loads("[" * 900 + "]" * 900)}
    path.write_text(json.dumps(barc_row(0)) + "\n" + json.dumps(deep_seeds) + "\n")
    summary = prepare(str(path), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (1, 1)
    assert (
        "seeds must be a list of strings or integers" in rejected(tmp_path / "store")[0]["reason"]
    )


# -- sizes -------------------------------------------------------------------------------


def test_row_over_the_size_limit_is_rejected_without_reading_it_whole(
    tmp_path: Path, barc_row
) -> None:
    path = tmp_path / "rows.jsonl"
    huge = json.dumps({**barc_row(5), "source": "x" * (sources.MAX_ROW_BYTES + 10)})
    path.write_text("\n".join([json.dumps(barc_row(0)), huge, json.dumps(barc_row(1))]) + "\n")
    summary = prepare(str(path), str(tmp_path / "store"))
    assert (summary.rows_read, summary.tasks_written, summary.rejected) == (3, 2, 1)
    (bad,) = rejected(tmp_path / "store")
    assert bad["row"] == 2 and f"over the {sources.MAX_ROW_BYTES}-byte limit" in bad["reason"]


@pytest.mark.parametrize("kind", ["json", "parquet", "taskdir"])
def test_size_limit_holds_for_every_format(
    tmp_path: Path, barc_row, monkeypatch, kind: str
) -> None:
    monkeypatch.setattr(sources, "MAX_ROW_BYTES", 2000)
    big = {**barc_row(7), "source": "y" * 3000}
    rows = [barc_row(0), big, barc_row(1)]
    if kind == "json":
        src = tmp_path / "rows.json"
        src.write_text(json.dumps(rows))
    elif kind == "parquet":
        src = tmp_path / "rows.parquet"
        pq.write_table(pa.Table.from_pylist(rows), src)
    else:
        src = tmp_path / "dir"
        src.mkdir()
        for i, r in enumerate([task(1), {**task(2), "pad": "z" * 3000}, task(3)]):
            (src / f"t{i}.json").write_text(json.dumps(r))
    summary = prepare(str(src), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (2, 1)
    assert "over the 2000-byte limit" in rejected(tmp_path / "store")[0]["reason"]


# -- parquet -----------------------------------------------------------------------------


def _barc_table(rows: list[dict], **columns: pa.Array) -> pa.Table:
    base = {
        "examples": [r["examples"] for r in rows],
        "source": [r["source"] for r in rows],
        "seeds": [r["seeds"] for r in rows],
    }
    return pa.table({**base, **columns})


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [
        ("source", pa.array([b"def main(): ..."] * 3, pa.binary()), "source is a bytes"),
        ("seeds", pa.array([[1], [2], [3]], pa.list_(pa.timestamp("s"))), "seeds must be a list"),
        ("examples", pa.array([b"[[1]]"] * 3, pa.binary()), "examples is a bytes"),
        ("examples", pa.array([0, 1, 2], pa.timestamp("ms")), "examples is a datetime"),
    ],
)
def test_parquet_columns_of_unexpected_types_reject_their_rows(
    tmp_path: Path, barc_row, column: str, values: pa.Array, reason: str
) -> None:
    path = tmp_path / "odd.parquet"
    pq.write_table(_barc_table([barc_row(i) for i in range(3)], **{column: values}), path)
    summary = prepare(str(path), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (0, 3)
    assert all(reason in r["reason"] for r in rejected(tmp_path / "store"))


def test_parquet_value_python_cannot_hold_rejects_that_row_only(tmp_path: Path, barc_row) -> None:
    """A timestamp past year 9999 fails Arrow -> Python conversion for its row alone."""
    rows = [barc_row(i) for i in range(3)]
    seeds = pa.array([[1], [2**40], [3]], pa.list_(pa.timestamp("s")))
    path = tmp_path / "ts.parquet"
    pq.write_table(_barc_table(rows, seeds=seeds), path)
    summary = prepare(str(path), str(tmp_path / "store"))
    assert summary.rejected == 3  # timestamps are not seeds either
    reasons = [r["reason"] for r in rejected(tmp_path / "store")]
    assert "cannot be read" in reasons[1] and "seeds must be a list" in reasons[0]


def _corrupt_row_group(path: Path, group: int) -> None:
    offset = pq.ParquetFile(path).metadata.row_group(group).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset : offset + 12] = b"\xff" * 12  # the page header no longer deserializes
    path.write_bytes(bytes(data))


def test_corrupt_parquet_page_fails_with_the_rows_it_covers(
    tmp_path: Path, barc_row, capsys
) -> None:
    path = tmp_path / "damaged.parquet"
    pq.write_table(_barc_table([barc_row(i) for i in range(6)]), path, row_group_size=2)
    _corrupt_row_group(path, 1)
    with pytest.raises(SourceError, match=r"is damaged: row group 1 \(rows 3\.\.4\)"):
        prepare(str(path), str(tmp_path / "store"))
    code = main(["prepare", "--source", str(path), "--out", str(tmp_path / "cli")])
    assert code == exitcodes.CONFIG_ERROR
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("arcx prepare: parquet file") and "row group 1" in line
    assert not (tmp_path / "cli" / "index.json").exists()  # never taken for a whole store


def test_parquet_that_is_not_parquet(tmp_path: Path, capsys) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1" + os.urandom(64))
    assert main(["prepare", "--source", str(path), "--out", str(tmp_path / "s")]) == 78
    assert "cannot read parquet file" in capsys.readouterr().err


# -- ARC-AGI challenges and solutions files -------------------------------------------------


def test_duplicate_task_ids_in_a_challenges_file_reject_every_copy(tmp_path: Path) -> None:
    text = (
        '{"aaa": ' + json.dumps(task(1)) + ', "bbb": ' + json.dumps(task(2))
        + ', "aaa": ' + json.dumps(task(3)) + "}"
    )  # fmt: skip
    (tmp_path / "d_challenges.json").write_text(text)
    summary = prepare(str(tmp_path / "d_challenges.json"), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (1, 2)
    bad = rejected(tmp_path / "store")
    assert [b["source_id"] for b in bad] == ["aaa", "aaa"]
    assert all("task id 'aaa' appears 2 times" in b["reason"] for b in bad)
    assert stored_ids(tmp_path / "store") == ["bbb"]


def test_duplicate_ids_in_the_solutions_file_reject_that_task(tmp_path: Path) -> None:
    (tmp_path / "e_challenges.json").write_text(json.dumps({"aaa": task(1), "bbb": task(2)}))
    (tmp_path / "e_solutions.json").write_text('{"aaa": [[[1]]], "bbb": [[[2]]], "aaa": [[[3]]]}')
    summary = prepare(str(tmp_path / "e_challenges.json"), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected) == (1, 1)
    assert "gives task 'aaa' 2 times" in rejected(tmp_path / "store")[0]["reason"]


def test_task_missing_from_the_solutions_file_is_kept_and_reported(tmp_path: Path, capsys) -> None:
    (tmp_path / "f_challenges.json").write_text(
        json.dumps({"aaa": task(1), "bbb": task(2), "ccc": task(3)})
    )
    (tmp_path / "f_solutions.json").write_text(json.dumps({"aaa": [[[1]]], "ccc": [[[3]]]}))
    summary = prepare(str(tmp_path / "f_challenges.json"), str(tmp_path / "store"))
    assert (summary.tasks_written, summary.missing_solutions) == (3, 1)
    by_id = {
        t.metadata["source_id"]: t for t in TaskStore.open(str(tmp_path / "store")).iter_tasks()
    }
    assert by_id["bbb"].test[0].output is None and by_id["aaa"].test[0].output == ((1,),)
    code = main(
        ["prepare", "--source", str(tmp_path / "f_challenges.json"), "--out", str(tmp_path / "c")]
    )
    assert code == 0
    assert "1 tasks have no entry in the solutions file" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"aaa": {"train": [}', "is not valid JSON"),
        ('{"aaa": 1} trailing', "extra data after the top-level value"),
        ("[1, 2", "is not valid JSON"),
        ("42", "found a JSON scalar"),
        ("nonsense", "is not valid JSON"),
        ("", "is not valid JSON"),
    ],
)
def test_broken_json_files_fail_with_one_line(
    tmp_path: Path, capsys, text: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert main(["prepare", "--source", str(path), "--out", str(tmp_path / "s")]) == 78
    (line,) = error_lines(capsys.readouterr().err)
    assert message in line


def test_json_file_that_is_not_utf8(tmp_path: Path, capsys) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[{"train": "\xe9"}]')
    assert main(["prepare", "--source", str(path), "--out", str(tmp_path / "s")]) == 78
    assert "not UTF-8" in capsys.readouterr().err


# -- hf:// names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["hf://..", "hf://../..", "hf:///etc", "hf://./data", "hf://a--b/c", "hf://org/x?split=a/b"],
)
def test_hf_source_must_be_a_hub_id(tmp_path: Path, source: str, capsys) -> None:
    with pytest.raises(SourceError, match="bad hf source"):
        prepare(source, str(tmp_path / "store"))
    assert main(["prepare", "--source", source, "--out", str(tmp_path / "s")]) == 78


def test_hf_id_that_is_also_a_local_directory_is_refused(tmp_path: Path, monkeypatch) -> None:
    """datasets reads ./org/name instead of the Hub when it exists; refuse the ambiguity."""
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="also a local path"):
        prepare("hf://org/name", str(tmp_path / "store"))


# -- reading a damaged task store ------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "damage"),
    [
        ("tasks/shard-00000.jsonl", b"{not json\n"),
        ("tasks/shard-00000.jsonl", b'{"task_id": "x"}\n'),
        ("solutions/shard-00000.jsonl", b'{"task_id": 1, "test_outputs": 5}\n'),
        ("tasks/shard-00000.jsonl", b"[" * 100_000 + b"\n"),
    ],
)
def test_a_damaged_shard_line_is_a_store_error(tmp_path: Path, target: str, damage: bytes) -> None:
    from arcx.tasks.store import StoreError

    (tmp_path / "t_challenges.json").write_text(json.dumps({"aaa": task(1)}))
    prepare(str(tmp_path / "t_challenges.json"), str(tmp_path / "store"))
    (tmp_path / "store" / target).write_bytes(damage)
    store = TaskStore.open(str(tmp_path / "store"))
    with pytest.raises(StoreError, match=r"tasks/shard-00000\.jsonl .*prepare the store again"):
        list(store.iter_tasks())


@pytest.mark.parametrize(
    "index",
    [
        {"format": "arcx-task-store", "version": 1, "shards": [1], "num_tasks": 1},
        {"format": "arcx-task-store", "version": 1, "shards": [], "num_tasks": "1"},
        {"format": "arcx-task-store", "version": 1, "num_tasks": 0},
    ],
)
def test_a_damaged_index_is_a_store_error(tmp_path: Path, index: dict) -> None:
    from arcx.tasks.store import StoreError

    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "index.json").write_text(json.dumps({"fingerprint": "f", **index}))
    with pytest.raises(StoreError, match=r"index\.json is damaged"):
        TaskStore.open(str(tmp_path / "store"))
