"""The words of the output-from-examples prompt: one source of truth for its text.

The layout follows arc24's output-from-examples prompt: a system message, a user message
holding the task statement, every train pair as a numbered example and then the test
input, and an assistant turn that opens with an output heading so the answer grid is the
very next thing the model writes.
"""

from __future__ import annotations

SYSTEM_PROMPT = "You are a careful solver of abstraction and reasoning puzzles."

TASK_STATEMENT = (
    "Solve this Abstraction and Reasoning Corpus (ARC) puzzle.\n"
    "The examples below show input grids and the output grids they turn into. "
    "Find the rule that maps each input to its output, then apply it to the test input.\n"
    "Each grid is a matrix of digits from 0 to 9, and each digit stands for a colour."
)

EXAMPLE_TEMPLATE = "## Example {number}\n\n### Input\n\n{input}\n\n### Output\n\n{output}\n"

TEST_TEMPLATE = "## Test case\n\n### Input\n\n{input}\n"

# The assistant turn starts with this text; the answer grid follows it directly.
ASSISTANT_PREFIX = "### Output\n\n"


def user_message(examples: list[tuple[str, str]], test_input: str) -> str:
    """The user turn: the task statement, the encoded examples, then the encoded test input."""
    parts = [TASK_STATEMENT, ""]
    for number, (inp, out) in enumerate(examples, start=1):
        parts.append(EXAMPLE_TEMPLATE.format(number=number, input=inp, output=out))
    parts.append(TEST_TEMPLATE.format(input=test_input))
    return "\n".join(parts)
