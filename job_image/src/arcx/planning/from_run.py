"""The plan summary `arcx run` writes to the store when a job starts (arcx_store.plan).

Pure: it prices the first unit the runner built (its prompts tokenised and batched by the
runner's own planner) with ``arcx plan``'s functions, scaling that unit's tasks to the
whole dataset, so nothing is tokenised twice. The first unit is a sample in dataset
order; the stated interval is the simple-random-sample one, as for ``arcx plan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arcx_store.plan import PlanSummary

from arcx.planning.estimate import JobShape, ModelShape, Plan, Sample, SeqInfo, build_plan
from arcx.runner.batching import kept_positions


def seq_info(seq: Any, rule: str) -> SeqInfo:
    """What the plan needs of one runner Sequence (arcx.runner.work.Sequence)."""
    span = seq.answer_span
    kept = len(kept_positions(rule, seq.length, seq.prompt_len, span))
    return SeqInfo(seq.length, seq.prompt_len, span[1] - span[0] if span else 0, kept)


def model_shape(config: Any) -> ModelShape:
    """The shape of an arcx.model.config.ModelConfig."""
    return ModelShape(
        d_model=config.hidden_size,
        n_layers=config.num_hidden_layers,
        n_heads=config.num_attention_heads,
        n_kv_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        d_ff=config.intermediate_size,
        vocab=config.vocab_size,
    )


def sample_of_unit(work: Any, rule: str, tasks_total: int) -> Sample:
    """One built unit (arcx.runner.work.UnitWork) as the sample of ``tasks_total`` tasks."""
    per_task: dict[str, int] = {}
    for s in work.sequences:
        per_task[s.task_id] = per_task.get(s.task_id, 0) + s.length
    # Tasks whose every sequence was skipped read no tokens; they still count.
    per_task_tokens = list(per_task.values()) + [0] * max(0, work.num_tasks - len(per_task))
    return Sample(
        tasks_total=tasks_total,
        tasks_read=work.num_tasks,
        groups=[[seq_info(s, rule) for s in work.sequences]],
        skipped_lengths=[int(sk.get("length", 0)) for sk in work.skipped],
        per_task_tokens=per_task_tokens,
    )


def summary(plan: Plan) -> PlanSummary:
    return PlanSummary(
        tasks=plan.tasks,
        tasksSampled=plan.tasks_sampled,
        sequences=plan.sequences,
        sequencesSkipped=plan.sequences_skipped,
        tokens=plan.tokens,
        tokensKept=plan.tokens_kept,
        paddedSlots=plan.padded_slots,
        units=plan.units,
        bytesTotal=plan.bytes_total,
        paddingFraction=round(plan.padding_fraction, 6),
        flopsModel=plan.flops_model,
        flopsExecuted=plan.flops_executed,
        relativeError95=(
            None if plan.sampled and plan.tasks_sampled < 2 else round(plan.relative_error_95, 6)
        ),
    )


def run_plan_summary(
    work: Any,
    *,
    rule: str,
    tasks_total: int,
    shape: ModelShape,
    job: JobShape,
    batches: Callable[[list[int]], list[Any]],
) -> PlanSummary:
    """The plan summary of a job from its first built unit and the runner's batch planner."""
    return summary(build_plan(sample_of_unit(work, rule, tasks_total), shape, job, batches))
