"""The barc row -> task rule: seeded, content-determined, documented defaults."""

from __future__ import annotations

import pytest

from arcx.tasks.barc import BarcSplit, split_indices
from arcx.tasks.convert import record_to_task
from arcx.tasks.task import Pair


def test_default_rule_gives_2_or_3_train_pairs_and_1_test_pair(barc_row) -> None:
    counts = set()
    for seed in range(40):
        task = record_to_task(barc_row(seed, n_examples=8), {}, seed=0)
        assert len(task.test) == 1
        counts.add(len(task.train))
    assert counts == {2, 3}


def test_pairs_come_from_the_row_and_metadata_keeps_program_and_seeds(barc_row) -> None:
    row = barc_row(7, n_examples=6)
    task = record_to_task(row, {"row": 12}, seed=0)
    train_idx, test_idx = task.metadata["train_examples"], task.metadata["test_examples"]
    assert len(set(train_idx + test_idx)) == len(train_idx) + len(test_idx)
    for pair, i in zip(task.train + task.test, train_idx + test_idx, strict=True):
        ex_in, ex_out = row["examples"][i]
        assert pair.input == tuple(map(tuple, ex_in))
        assert pair.output == tuple(map(tuple, ex_out))
    assert task.metadata["program"] == row["source"]
    assert task.metadata["seeds"] == row["seeds"]
    assert task.metadata["row"] == 12


def test_split_depends_on_content_and_seed_only(barc_row) -> None:
    row = barc_row(3, n_examples=10)
    a = record_to_task(row, {"row": 1}, seed=0)
    b = record_to_task(row, {"row": 999}, seed=0)
    assert a == b and a.task_id == b.task_id
    splits = {tuple(record_to_task(row, {}, seed=s).metadata["train_examples"]) for s in range(12)}
    assert len(splits) > 1, "the seed must change the split"


def test_two_examples_give_one_train_one_test(barc_row) -> None:
    task = record_to_task(barc_row(1, n_examples=2), {}, seed=0)
    assert (len(task.train), len(task.test)) == (1, 1)


def test_custom_split() -> None:
    pairs = [Pair(((i,),), ((i,),)) for i in range(10)]
    train, test = split_indices(pairs, seed=5, split=BarcSplit(min_train=4, max_train=4, n_test=2))
    assert (len(train), len(test)) == (4, 2)
    with pytest.raises(ValueError, match="invalid barc split"):
        BarcSplit(min_train=3, max_train=2)
