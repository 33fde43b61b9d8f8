"""Answer parsing: the text a model wrote -> a grid, or the reason it is not one. Never raises."""

from __future__ import annotations

from dataclasses import dataclass

from arcx.prompts.encoders import GridEncoder
from arcx.tasks.task import Grid

# Generation may run past the end of the turn; the answer ends at the first of these.
END_MARKERS = ("<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class ParsedAnswer:
    grid: Grid | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.grid is not None


def parse_answer(text: str, encoder: GridEncoder) -> ParsedAnswer:
    """Decode ``text`` with ``encoder``; an unparseable answer gives ``grid=None`` and why."""
    try:
        if not isinstance(text, str):
            return ParsedAnswer(None, f"unparseable: expected text, got {type(text).__name__}")
        cut = len(text)
        for marker in END_MARKERS:
            pos = text.find(marker)
            if pos != -1:
                cut = min(cut, pos)
        return ParsedAnswer(encoder.to_grid(text[:cut]), None)
    except Exception as err:  # never raise: any failure is an unparseable answer
        return ParsedAnswer(None, f"unparseable: {err}")
