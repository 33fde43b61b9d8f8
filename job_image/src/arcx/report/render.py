"""Plots (matplotlib, PNG) and the HTML page that shows them with captions.

``figures`` draws each plot into ``out_dir`` and returns (file, title, caption) triples;
``page`` is a pure function from the numbers and those triples to the HTML text.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
from arcx_store.layout import EVENTS_DIR

from arcx.report.data import ReportData

Figure = tuple[str, str, str]  # (png file name, title, caption)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    _plt().close(fig)
    return name


def figures(d: ReportData, out_dir: Path) -> list[Figure]:
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    out: list[Figure] = []
    sampled = sum(s.tokens_sampled for s in d.stats[:1])

    sites = sorted({s.site for s in d.stats}, key=[s.site for s in d.stats].index)
    fig, axes = plt.subplots(1, len(sites), figsize=(5 * len(sites), 3.6), squeeze=False)
    for ax, site in zip(axes[0], sites, strict=True):
        for s in (s for s in d.stats if s.site == site):
            if len(s.norms):
                ax.hist(s.norms, bins=60, histtype="step", label=f"layer {s.layer}")
        ax.set(title=site, xlabel="L2 norm of a token's activation", ylabel="tokens")
        ax.legend(fontsize=8)
    out.append(
        (
            _save(fig, out_dir, "norms.png"),
            "Activation norm distribution per site and layer",
            f"Histogram of the L2 norm of each token's activation vector (d_model "
            f"{d.summary['dModel']}), one line per layer, one panel per site; "
            f"{sampled:,} tokens sampled uniformly at random from the "
            f"{d.summary['tokens']:,} stored.",
        )
    )

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for site in sites:
        rows = [s for s in d.stats if s.site == site]
        ax.errorbar(
            [s.layer for s in rows],
            [s.mean for s in rows],
            yerr=[s.std for s in rows],
            marker="o",
            capsize=4,
            label=site,
        )
    ax.set(xlabel="layer", ylabel="activation value", xticks=sorted({s.layer for s in d.stats}))
    ax.legend(fontsize=8)
    out.append(
        (
            _save(fig, out_dir, "mean_std.png"),
            "Mean and standard deviation per layer",
            "Mean of every activation element of the sampled tokens (marker) with one "
            "standard deviation either side (bar), per recorded layer and site.",
        )
    )

    fig, ax = plt.subplots(figsize=(6, 3.6))
    lengths = d.seq_lengths + d.skipped_lengths
    if lengths:
        ax.hist(
            [d.seq_lengths, d.skipped_lengths], bins=40, stacked=True, label=["stored", "skipped"]
        )
    if d.max_seq_len:
        ax.axvline(d.max_seq_len, color="red", linestyle="--", label=f"maxSeqLen {d.max_seq_len}")
    ax.set(xlabel="tokens per sequence", ylabel="sequences")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    what = (
        "tokens the model read per sequence"
        if d.positions == "all"
        else f"tokens kept per sequence (positions: {d.positions}; the prompt lengths of "
        "stored sequences are not in the store under this rule)"
    )
    out.append(
        (
            _save(fig, out_dir, "lengths.png"),
            "Prompt lengths and maxSeqLen",
            f"Histogram of {what}, stacked with the sequences skipped for being longer than "
            f"maxSeqLen (their lengths come from the commit markers); the dashed line is "
            f"maxSeqLen. {len(d.seq_lengths):,} stored, {len(d.skipped_lengths):,} skipped.",
        )
    )

    fig, ax = plt.subplots(figsize=(7, 3.6))
    units = sorted(d.unit_tokens)
    real = [d.unit_tokens[u].get("real", 0) for u in units]
    padded = [d.unit_tokens[u].get("padded", 0) for u in units]
    kept = [d.unit_tokens[u]["kept"] for u in units]
    ax.bar(units, padded, color="#ddd", label="batch slots (real + padding)")
    ax.bar(units, real, color="#7a9", label="real tokens")
    ax.plot(units, kept, "k.", label="kept tokens (stored)")
    ax.set(xlabel="unit", ylabel="tokens")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    pad = 1 - sum(real) / sum(padded) if sum(padded) else 0.0
    out.append(
        (
            _save(fig, out_dir, "units.png"),
            "Tokens and padding per unit",
            f"Per committed unit: batch slots the accelerator computed (grey), the real "
            f"tokens among them (green) and the tokens kept by the positions rule (dots). "
            f"Padding over the store: {pad:.1%}. Units without recorded events show kept "
            "tokens only.",
        )
    )

    fig, ax = plt.subplots(figsize=(7, 3.6))
    if d.throughput:
        t, r = zip(*d.throughput, strict=True)
        ax.plot(np.array(t) / 60, r, marker="o")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    ax.set(xlabel="minutes since the job first started", ylabel="tokens / s")
    out.append(
        (
            _save(fig, out_dir, "throughput.png"),
            "Throughput over time",
            f"Tokens read per second by slice 0, averaged from the start of each attempt to "
            f"each unit commit (the rate the progress bar shows), from the runner's events "
            f"in the store's {EVENTS_DIR}/ folder ("
            f"{len(d.throughput)} points). A restart starts a new average.",
        )
    )

    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = list(d.accuracy_by_source)
    acc = [c / n if n else 0.0 for c, n in d.accuracy_by_source.values()]
    ax.barh(names or ["(no predictions)"], acc or [0.0])
    for i, (c, n) in enumerate(d.accuracy_by_source.values()):
        ax.text(0.01, i, f"{c}/{n}", va="center")
    ax.set(xlim=(0, 1), xlabel="fraction of test inputs answered exactly")
    out.append(
        (
            _save(fig, out_dir, "accuracy.png"),
            "Accuracy by task source",
            "Exact-match accuracy of the stored predictions (teacher-forced argmax or "
            "generation), grouped by the source each task was prepared from; 'unknown' when "
            "the dataset named in the manifest can no longer be opened.",
        )
    )
    return out


SUMMARY_ROWS = (
    ("unitsCommitted", "units committed"),
    ("unitsTotal", "units in the plan"),
    ("tasks", "tasks"),
    ("sequences", "sequences"),
    ("sequencesSkipped", "sequences skipped"),
    ("tokens", "tokens stored"),
    ("bytesInParts", "bytes in parts"),
    ("predictions", "predictions"),
    ("correct", "correct"),
)


def page(d: ReportData, figs: list[Figure]) -> str:
    s = d.summary
    rows = "".join(
        f'<tr><th>{html.escape(label)}</th><td data-key="{key}">{s[key]}</td></tr>'
        for key, label in SUMMARY_ROWS
    )
    meta = (
        f"model {html.escape(str(s['model'].get('source')))} · sites "
        f"{html.escape(', '.join(s['sites']))} · layers {', '.join(map(str, s['layers']))} · "
        f"positions {html.escape(str(s['positions']))} · dtype {html.escape(str(s['dtype']))}"
    )
    blocks = "".join(
        f'<figure><h2>{html.escape(title)}</h2><img src="{html.escape(name)}" '
        f'alt="{html.escape(title)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        for name, title, caption in figs
    )
    blob = html.escape(json.dumps(s, sort_keys=True, default=str), quote=False)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>arcx report: {html.escape(s["uri"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222 }}
table {{ border-collapse: collapse }} th, td {{ padding: 2px 12px; text-align: left }}
td {{ font-variant-numeric: tabular-nums }} figure {{ margin: 2em 0 }}
img {{ max-width: 100% }} figcaption {{ color: #555; font-size: 0.92em }}
</style></head><body>
<h1>arcx report</h1><p><code>{html.escape(s["uri"])}</code></p><p>{meta}</p>
<table id="summary">{rows}</table>
{blocks}
<script type="application/json" id="inspect">{blob}</script>
</body></html>
"""
