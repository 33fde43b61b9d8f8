"""A unit's tasks -> the token sequences the model reads (one per test input), and scoring."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcx.config import ConfigError, JobConfig
from arcx.runner.plan import Unit


@dataclass(frozen=True)
class Sequence:
    task_id: str
    test_index: int
    input_ids: np.ndarray  # int32 [n]
    prompt_len: int
    answer_span: tuple[int, int] | None
    expected: Any  # the (augmented) test output grid, or None
    augmentation: Any  # arcx.prompts.Augmentation
    annotations: Any = None  # arcx.prompts.annotations.TokenAnnotations, one per input id

    @property
    def length(self) -> int:
        return len(self.input_ids)


@dataclass
class UnitWork:
    unit: Unit
    num_tasks: int = 0
    sequences: list[Sequence] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


class PromptMaker:
    """Builds sequences with the configured encoder, template and augmentation."""

    def __init__(self, config: JobConfig, tokenizer: Any) -> None:
        from arcx.prompts import EncoderSpecError, parse_encoder

        try:
            self.encoder = parse_encoder(config.prompt.encoder)
        except EncoderSpecError as err:
            raise ConfigError(f"prompt.encoder: {err}") from None
        self.config = config
        self.tokenizer = tokenizer

    def unit_work(self, store: Any, unit: Unit) -> UnitWork:
        from arcx.prompts import build_prompt, choose_augmentation
        from arcx.prompts.annotations import AnnotationError, annotate_prompt

        cfg = self.config
        aug_cfg = cfg.prompt.augmentation
        max_len = cfg.batching.max_seq_len
        work = UnitWork(unit)
        for task in store.iter_tasks(unit.start, unit.stop):
            work.num_tasks += 1
            aug = choose_augmentation(
                task.task_id, aug_cfg.dihedral, aug_cfg.permute_colors, aug_cfg.seed
            )
            seen = aug.apply_task(task)
            for ti in range(len(seen.test)):
                try:
                    p = build_prompt(
                        seen,
                        ti,
                        self.encoder,
                        self.tokenizer,
                        teacher_forcing=cfg.extraction.teacher_forcing,
                    )
                except (ValueError, IndexError) as err:
                    work.skipped.append(
                        _skip(task.task_id, ti, 0, f"cannot build the prompt: {err}")
                    )
                    continue
                n = len(p.input_ids)
                if n > max_len:
                    work.skipped.append(
                        _skip(task.task_id, ti, n, f"{n} tokens > batching.maxSeqLen {max_len}")
                    )
                    continue
                try:
                    ann = annotate_prompt(p, seen, self.encoder, self.tokenizer)
                except AnnotationError:
                    ann = None  # a template the layout cannot follow: stored as role -1
                work.sequences.append(
                    Sequence(
                        task.task_id,
                        ti,
                        np.asarray(p.input_ids, dtype=np.int32),
                        p.prompt_len,
                        p.answer_span,
                        seen.test[ti].output,
                        aug,
                        ann,
                    )
                )
        return work

    def score(self, seq: Sequence, answer_ids: list[int]) -> dict[str, Any]:
        """A prediction row: the parsed grid (mapped back through the augmentation), correct or not."""
        from arcx.prompts import parse_answer

        text = self.tokenizer.decode(answer_ids, skip_special_tokens=False)
        parsed = parse_answer(text, self.encoder)
        correct = (
            parsed.grid is not None and seq.expected is not None and parsed.grid == seq.expected
        )
        grid = None
        if parsed.grid is not None:
            try:
                grid = [list(r) for r in seq.augmentation.invert_grid(parsed.grid)]
            except (ValueError, IndexError):
                grid = [list(r) for r in parsed.grid]
        return {
            "taskId": seq.task_id,
            "testIndex": seq.test_index,
            "prediction": grid,
            "correct": bool(correct),
            "error": parsed.error,
        }


def _skip(task_id: str, test_index: int, length: int, reason: str) -> dict[str, Any]:
    return {"taskId": task_id, "testIndex": test_index, "length": length, "reason": reason}
