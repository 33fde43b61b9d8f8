"""From sequence lengths to a job's counts, bytes, FLOPs and time: pure functions.

FLOPs are counted the usual way (2 per multiply-add), per token for the projections and
the MLP of every layer the forward runs, and per sequence for causal attention
(``2 x head_dim x heads x L (L+1)`` per layer: QK^T and AV over the keys at or before each
query, as causal kernels compute them; packed segments never attend across). Padding
slots pay the projections and MLP too: "executed" FLOPs include them, "model" FLOPs do not.
Scoring adds the LM head at the answer tokens; generation adds, per new token, one
token's forward through every layer, attention over the context so far and the LM head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from arcx_store.dtypes import itemsize
from arcx_store.parts import TOKEN_ID_DTYPE, sequence_bytes, token_bytes
from arcx_store.stats import part_stats_bytes

from arcx.planning.accelerators import ACCELERATORS, DEFAULT_MFU, Accelerator

TOKEN_ID_BYTES = np.dtype(TOKEN_ID_DTYPE).itemsize  # "token_ids" per kept token
Z95 = 1.96


@dataclass(frozen=True)
class ModelShape:
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    vocab: int

    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any]) -> ModelShape:
        d, h = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        return cls(
            d_model=d,
            n_layers=int(cfg["num_hidden_layers"]),
            n_heads=h,
            n_kv_heads=int(cfg.get("num_key_value_heads") or h),
            head_dim=int(cfg.get("head_dim") or d // h),
            d_ff=int(cfg["intermediate_size"]),
            vocab=int(cfg["vocab_size"]),
        )

    def linear_flops_per_token(self, layers: int) -> float:
        d, q, kv = self.d_model, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        per_layer = d * q + 2 * d * kv + q * d + 3 * d * self.d_ff
        return 2.0 * layers * per_layer

    def attention_flops(self, length: int, layers: int) -> float:
        return 2.0 * layers * self.n_heads * self.head_dim * length * (length + 1)

    def lm_head_flops_per_token(self) -> float:
        return 2.0 * self.d_model * self.vocab


@dataclass(frozen=True)
class SeqInfo:
    length: int  # tokens the model reads
    prompt_len: int
    answer_len: int  # 0 without teacher forcing
    kept: int  # positions the positions rule keeps


@dataclass(frozen=True)
class Sample:
    """What the prompt builder made of the tasks read (all of them, or a random sample)."""

    tasks_total: int
    tasks_read: int
    groups: list[list[SeqInfo]]  # sequences per (pseudo-)unit of unit_size sampled tasks
    skipped_lengths: list[int]  # sequences maxSeqLen would skip (0 = the prompt failed)
    per_task_tokens: list[int]  # tokens read per sampled task (for the error estimate)


@dataclass(frozen=True)
class JobShape:
    sites: int
    layers: list[int]
    dtype: str
    unit_size: int
    max_seq_len: int
    scores: bool
    max_new_tokens: int
    packed: bool


@dataclass
class AcceleratorEstimate:
    name: str
    peak_tflops_bf16: float
    chip_hours: float
    wall_hours: float


@dataclass
class Plan:
    tasks: int
    tasks_sampled: int
    sampled: bool
    sequences: int
    sequences_skipped: int
    seq_len_percentiles: dict[str, int]
    max_seq_len: int
    tokens: int
    tokens_kept: int
    padded_slots: int
    padding_fraction: float
    units: int
    layers_run: int
    bytes_per_site_layer: int
    bytes_token_ids: int
    bytes_annotations: int  # ann.* per token, offsets and seq.* per sequence
    bytes_statistics: int  # stats.* per part and site.layer (one part per unit and host)
    bytes_total: int
    sites_x_layers: int
    flops_model: float
    flops_executed: float
    relative_error_95: float  # half-width of the 95% interval on token totals; 0 when exact
    mfu: float
    chips: int
    packed: bool
    accelerators: list[AcceleratorEstimate] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(values: Sequence[int], qs: Sequence[int] = (50, 90, 99)) -> dict[str, int]:
    """Nearest-rank percentiles and the max; zeros for no values."""
    if not values:
        return {**{f"p{q}": 0 for q in qs}, "max": 0}
    s = sorted(values)
    out = {f"p{q}": s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))] for q in qs}
    out["max"] = s[-1]
    return out


def relative_error_95(per_task: Sequence[int], population: int) -> float:
    """Half-width of the 95% interval of a total scaled up from a simple random sample of
    tasks, relative to the total (finite-population corrected); 0 for a full census."""
    n = len(per_task)
    if n == 0 or n >= population:
        return 0.0
    mean = sum(per_task) / n
    if mean == 0 or n < 2:
        return 0.0
    var = sum((x - mean) ** 2 for x in per_task) / (n - 1)
    return Z95 * math.sqrt(var / n * (1 - n / population)) / mean


def build_plan(
    sample: Sample,
    shape: ModelShape,
    job: JobShape,
    batches: Callable[[list[int]], list[Any]],
    *,
    mfu: float = DEFAULT_MFU,
    chips: int = 1,
    accelerators: Sequence[Accelerator] = ACCELERATORS,
) -> Plan:
    """Scale the sample to the whole dataset and price it.

    ``batches(lengths)`` is the runner's own planner for one unit's sequences (see
    arcx.runner.packing.BatchPlanner); each returned batch has ``length`` and ``num_rows``.
    """
    scale = sample.tasks_total / sample.tasks_read if sample.tasks_read else 0.0
    seqs = [s for g in sample.groups for s in g]
    layers_run = (
        shape.n_layers
        if job.scores or job.max_new_tokens > 0
        else min(shape.n_layers, max(job.layers) + 1)
    )
    slots = 0
    for group in sample.groups:
        if group:
            slots += sum(b.length * b.num_rows for b in batches([s.length for s in group]))
    tokens = sum(s.length for s in seqs)
    kept = sum(s.kept for s in seqs)
    lin = shape.linear_flops_per_token(layers_run)
    model_flops = tokens * lin + sum(shape.attention_flops(s.length, layers_run) for s in seqs)
    executed = model_flops + (slots - tokens) * lin
    extra = 0.0
    if job.scores:
        extra += sum(s.answer_len for s in seqs) * shape.lm_head_flops_per_token()
    if job.max_new_tokens:
        full = shape.linear_flops_per_token(shape.n_layers) + shape.lm_head_flops_per_token()
        for s in seqs:
            ctx = s.prompt_len + job.max_new_tokens / 2
            attn = 4.0 * shape.n_layers * shape.n_heads * shape.head_dim * ctx
            extra += job.max_new_tokens * (full + attn)
    model_flops = (model_flops + extra) * scale
    executed = (executed + extra) * scale
    n_sl = job.sites * len(job.layers)
    kept_total = round(kept * scale)
    per_sl = kept_total * shape.d_model * itemsize(job.dtype)
    ids = kept_total * TOKEN_ID_BYTES
    n_seq = round(len(seqs) * scale)
    ann = kept_total * (token_bytes() - TOKEN_ID_BYTES) + n_seq * sequence_bytes()
    n_units = -(-sample.tasks_total // job.unit_size)
    stats = n_units * n_sl * part_stats_bytes(shape.d_model)
    plan = Plan(
        tasks=sample.tasks_total,
        tasks_sampled=sample.tasks_read,
        sampled=sample.tasks_read < sample.tasks_total,
        sequences=round(len(seqs) * scale),
        sequences_skipped=round(len(sample.skipped_lengths) * scale),
        seq_len_percentiles=percentiles([s.length for s in seqs]),
        max_seq_len=job.max_seq_len,
        tokens=round(tokens * scale),
        tokens_kept=kept_total,
        padded_slots=round(slots * scale),
        padding_fraction=1 - tokens / slots if slots else 0.0,
        units=-(-sample.tasks_total // job.unit_size),
        layers_run=layers_run,
        bytes_per_site_layer=per_sl,
        bytes_token_ids=ids,
        bytes_annotations=ann,
        bytes_statistics=stats,
        bytes_total=per_sl * n_sl + ids + ann + stats,
        sites_x_layers=n_sl,
        flops_model=model_flops,
        flops_executed=executed,
        relative_error_95=relative_error_95(sample.per_task_tokens, sample.tasks_total),
        mfu=mfu,
        chips=chips,
        packed=job.packed,
    )
    for acc in accelerators:
        seconds = executed / (acc.peak_tflops_bf16 * 1e12 * mfu)
        plan.accelerators.append(
            AcceleratorEstimate(
                acc.name, acc.peak_tflops_bf16, seconds / 3600, seconds / 3600 / chips
            )
        )
    return plan


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1000
    return f"{n:.2f} PB"


def _hours(h: float) -> str:
    if h < 1 / 3600:
        return f"{h * 3600e3:.3g} ms"
    if h < 1 / 60:
        return f"{h * 3600:.1f} s"
    if h < 1:
        return f"{h * 60:.1f} min"
    return f"{h:,.2f} h"


def format_plan(p: Plan) -> str:
    pct = p.seq_len_percentiles
    err = (
        f"sampled {p.tasks_sampled} of {p.tasks} tasks at random; totals scaled up, "
        f"95% interval on token totals +/-{p.relative_error_95:.1%}"
        if p.sampled
        else f"all {p.tasks} tasks read (exact counts)"
    )
    lines = [
        f"tasks            {p.tasks:,}   ({err})",
        f"sequences        {p.sequences:,}   ({p.sequences_skipped:,} skipped: longer than "
        f"maxSeqLen {p.max_seq_len} or no prompt)",
        f"sequence length  p50 {pct['p50']:,}  p90 {pct['p90']:,}  p99 {pct['p99']:,}  "
        f"max {pct['max']:,} tokens",
        f"tokens           {p.tokens:,} read; {p.tokens_kept:,} kept by the positions rule",
        f"batching         {p.padded_slots:,} slots, padding {p.padding_fraction:.1%} "
        f"({'packed rows' if p.packed else 'one sequence per row, length buckets'})",
        f"units            {p.units:,}",
        f"bytes            {_bytes(p.bytes_per_site_layer)} per site and layer x "
        f"{p.sites_x_layers} + token ids {_bytes(p.bytes_token_ids)} + annotations "
        f"{_bytes(p.bytes_annotations)} + statistics {_bytes(p.bytes_statistics)} = "
        f"{_bytes(p.bytes_total)}",
        f"FLOPs            {p.flops_model:.3e} model, {p.flops_executed:.3e} executed "
        f"(with padding; {p.layers_run} layers run)",
        f"time at MFU {p.mfu:.0%} (peak dense bf16 per chip; arcx/planning/accelerators.py):",
        f"  {'accelerator':<12} {'peak TFLOP/s':>12} {'chip-hours':>12} {'wall on ' + str(p.chips) + ' chips':>16}",
    ]
    for a in p.accelerators:
        lines.append(
            f"  {a.name:<12} {a.peak_tflops_bf16:>12,.0f} {a.chip_hours:>12.3g} "
            f"{_hours(a.wall_hours):>16}"
        )
    return "\n".join(lines)
