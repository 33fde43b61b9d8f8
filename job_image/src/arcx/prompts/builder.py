"""The prompt builder: a task and one of its test inputs -> token ids the model reads.

The prompt (system and user messages rendered with the tokenizer's chat template and
``add_generation_prompt``, then the assistant prefix) and the answer (the encoded test
output, then the end-of-turn token) are tokenized separately and concatenated. So:

- ``input_ids[:prompt_len]`` is exactly what generation starts from, whether or not the
  answer is appended;
- with teacher forcing, ``answer_span = (prompt_len, len(input_ids))`` covers the answer
  grid's tokens and the end-of-turn token, with no token straddling the boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arcx.prompts import templates
from arcx.prompts.encoders import GridEncoder
from arcx.tasks.task import Grid, Task

END_OF_TURN = "<|im_end|>"


@dataclass(frozen=True)
class Prompt:
    task_id: str
    test_index: int
    input_ids: list[int]
    prompt_len: int
    answer_span: tuple[int, int] | None
    text: str
    prompt_text: str


# Which grid of the prompt a text slot holds: (kind, train pair index or -1); the kinds
# are the ones arcx.prompts.annotations turns into token roles.
TRAIN_INPUT, TRAIN_OUTPUT, TEST_INPUT = "train_input", "train_output", "test_input"
GridText = Callable[[Grid, str, int], str]


def prompt_messages(task: Task, test_index: int, encoder: GridEncoder) -> list[dict[str, str]]:
    """The system and user messages for one test input of ``task`` (pure)."""
    return layout_messages(task, test_index, lambda grid, kind, k: encoder.to_text(grid))


def layout_messages(task: Task, test_index: int, grid_text: GridText) -> list[dict[str, str]]:
    """The messages with each grid written by ``grid_text(grid, kind, example)``: the one
    place the prompt's layout is decided, so the annotations can mark where each grid lies."""
    if not 0 <= test_index < len(task.test):
        raise IndexError(
            f"task {task.task_id} has {len(task.test)} test inputs; no index {test_index}"
        )
    examples = [
        (grid_text(p.input, TRAIN_INPUT, k), grid_text(p.output, TRAIN_OUTPUT, k))  # type: ignore[arg-type]
        for k, p in enumerate(task.train)
    ]
    user = templates.user_message(examples, grid_text(task.test[test_index].input, TEST_INPUT, -1))
    return [
        {"role": "system", "content": templates.SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def end_of_turn_id(tokenizer: Any) -> int:
    """The id that closes the assistant turn: ``<|im_end|>`` when the vocabulary has it, else eos."""
    token_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(token_id, int) and token_id != getattr(tokenizer, "unk_token_id", None):
        return token_id
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has neither <|im_end|> nor an eos token to end the answer")
    return int(tokenizer.eos_token_id)


def build_prompt(
    task: Task,
    test_index: int,
    encoder: GridEncoder,
    tokenizer: Any,
    *,
    teacher_forcing: bool,
) -> Prompt:
    """Token ids for one test input; with ``teacher_forcing`` the known answer follows."""
    messages = prompt_messages(task, test_index, encoder)
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_text = rendered + templates.ASSISTANT_PREFIX
    prompt_ids = list(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    if not teacher_forcing:
        return Prompt(
            task.task_id, test_index, prompt_ids, len(prompt_ids), None, prompt_text, prompt_text
        )
    output = task.test[test_index].output
    if output is None:
        raise ValueError(
            f"task {task.task_id} test {test_index} has no known output to teacher-force; "
            "set extraction.teacherForcing to false or use a store prepared with solutions"
        )
    answer_text = encoder.to_text(output)
    eot = end_of_turn_id(tokenizer)
    answer_ids = [*tokenizer(answer_text, add_special_tokens=False)["input_ids"], eot]
    ids = prompt_ids + answer_ids
    text = prompt_text + answer_text + tokenizer.convert_ids_to_tokens(eot)
    return Prompt(
        task.task_id,
        test_index,
        ids,
        len(prompt_ids),
        (len(prompt_ids), len(ids)),
        text,
        prompt_text,
    )
