"""Read a job's dataset through its own tokenizer and prompt builder: the I/O half of `arcx plan`.

Tasks are streamed in store order; when there are more than ``max_tasks_read``, a simple
random sample of that many (seeded) gets prompts built and the rest are only counted,
so a 200k-task dataset is planned in the time a few thousand prompts take. Sampled
tasks are grouped ``unitSize`` at a time into pseudo-units and batched by the runner's
own planner, so padding is priced as the runner would cut it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from arcx.config import ConfigError, JobConfig
from arcx.planning.estimate import JobShape, ModelShape, Sample, SeqInfo
from arcx.planning.from_run import seq_info
from arcx.runner.plan import Unit

DEFAULT_MAX_TASKS_READ = 2000


class _Tasks:
    """A list of tasks behind the ``iter_tasks`` interface the prompt builder reads."""

    def __init__(self, tasks: list[Any]) -> None:
        self.tasks = tasks

    def iter_tasks(self, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        return iter(self.tasks[start:stop])


def model_files(config: JobConfig) -> tuple[ModelShape, Any]:
    """The model's shape (config.json) and its tokenizer; weights are not read."""
    from arcx.model.errors import ModelLoadError
    from arcx.model.load import load_tokenizer
    from arcx.model.sources import resolve_model_dir

    try:
        model_dir = Path(resolve_model_dir(config.model.source))
        raw = json.loads((model_dir / "config.json").read_text())
        shape = ModelShape.from_hf_config(raw)
        tokenizer = load_tokenizer(model_dir)
    except ModelLoadError as err:
        raise ConfigError(f"model.source: {err}") from None
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"model.source: cannot read its config.json: {err}") from None
    if config.extraction.layers[-1] >= shape.n_layers:
        raise ConfigError(
            f"extraction.layers: layer {config.extraction.layers[-1]} is outside the model's "
            f"{shape.n_layers} layers"
        )
    return shape, tokenizer


def job_shape(config: JobConfig) -> JobShape:
    ex = config.extraction
    engine = getattr(config, "engine", None)
    gen = config.generation.max_new_tokens
    return JobShape(
        sites=len(ex.sites),
        layers=list(ex.layers),
        dtype=ex.dtype,
        unit_size=config.output.unit_size,
        max_seq_len=config.batching.max_seq_len,
        scores=bool(getattr(ex, "scores", ex.teacher_forcing)),
        max_new_tokens=gen,
        packed=bool(engine is not None and engine.packing and gen == 0),
    )


def batcher(config: JobConfig, packed: bool, n_shards: int) -> Callable[[list[int]], list[Any]]:
    """The runner's planner for one unit's sequences over ``n_shards`` data shards (with
    the empty shard batches it adds when a shape has fewer batches than shards)."""
    from arcx.runner.packing import BatchPlanner

    planner = BatchPlanner.of(config, packed=packed)
    return lambda lengths: planner.batches(lengths, n_shards)


def collect_sample(
    config: JobConfig,
    store: Any,
    tokenizer: Any,
    *,
    max_tasks_read: int = DEFAULT_MAX_TASKS_READ,
    seed: int = 0,
    on_task: Callable[[], None] | None = None,
) -> Sample:
    from arcx.runner.work import PromptMaker

    total = int(store.num_tasks)
    if total > max_tasks_read:
        chosen = set(random.Random(seed).sample(range(total), max_tasks_read))
        last = max(chosen)
    else:
        chosen, last = set(range(total)), total - 1
    maker = PromptMaker(config, tokenizer)
    rule = config.extraction.positions
    unit_size = config.output.unit_size
    groups: list[list[SeqInfo]] = []
    skipped: list[int] = []
    per_task: list[int] = []
    held: list[Any] = []

    def flush() -> None:
        if not held:
            return
        work = maker.unit_work(_Tasks(held), Unit(len(groups), 0, len(held)))
        tokens_of: dict[str, int] = {t.task_id: 0 for t in held}
        group = []
        for s in work.sequences:
            group.append(seq_info(s, rule))
            tokens_of[s.task_id] = tokens_of.get(s.task_id, 0) + s.length
        groups.append(group)
        skipped.extend(int(sk.get("length", 0)) for sk in work.skipped)
        per_task.extend(tokens_of.values())
        held.clear()

    read = 0
    for i, task in enumerate(store.iter_tasks(0, total)):
        if i > last:
            break
        if i in chosen:
            held.append(task)
            read += 1
            if on_task is not None:
                on_task()
            if len(held) == unit_size:
                flush()
    flush()
    return Sample(total, read, groups, skipped, per_task)
