"""What the report shows, gathered from a store: the I/O half of `arcx report`.

The headline numbers come from `arcx inspect`'s own summary (so the two always agree),
activations from :func:`arcx.open_store`, throughput and padding from the runner's
events (``events/``), and task sources from the dataset named in the manifest when it
can still be opened.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from arcx_store.layout import tensor_name

from arcx.runner.progress import read_events


@dataclass
class SiteLayerStats:
    name: str  # site.layer
    site: str
    layer: int
    norms: np.ndarray  # L2 norm per sampled token
    mean: float  # over every element of the sampled tokens
    std: float
    tokens_sampled: int


@dataclass
class ReportData:
    summary: dict[str, Any]  # `arcx inspect --json`
    max_seq_len: int
    positions: str
    seq_lengths: list[int]  # tokens of each stored sequence (read lengths when positions=all)
    skipped_lengths: list[int]
    stats: list[SiteLayerStats] = field(default_factory=list)
    unit_tokens: dict[int, dict[str, int]] = field(default_factory=dict)  # unit -> counts
    throughput: list[tuple[float, float]] = field(default_factory=list)  # (s, running tok/s)
    accuracy_by_source: dict[str, tuple[int, int]] = field(default_factory=dict)


def task_sources(dataset_source: str) -> dict[str, str]:
    """task id -> its source (``metadata.source`` in the task store); empty if unreadable."""
    try:
        from arcx.tasks.resolve import open_task_source

        if "://" in dataset_source and not dataset_source.startswith("gs://"):
            return {}  # a raw source would be prepared again just for its names
        store = open_task_source(dataset_source)
        return {t.task_id: str(t.metadata.get("source", "unknown")) for t in store.iter_tasks()}
    except Exception:  # the dataset moved or is private: accuracy is shown as one group
        return {}


def gather(uri: str, *, max_tokens_per_site: int = 20000, seed: int = 0) -> ReportData:
    from arcx.notebook import open_store
    from arcx.runner.inspect_store import summarize_store, summary_json

    view = open_store(uri)
    summary = summary_json(summarize_store(view.storage))
    manifest = view.metadata
    config = manifest.get("config", {})
    positions = str(manifest.get("positions", config.get("extraction", {}).get("positions")))
    data = ReportData(
        summary=summary,
        max_seq_len=int(config.get("batching", {}).get("maxSeqLen", 0)),
        positions=positions,
        seq_lengths=[],
        skipped_lengths=[],
    )
    rng = np.random.default_rng(seed)
    per_name: dict[str, list[np.ndarray]] = defaultdict(list)
    lengths = [len(s) for s in view.sequences(names=[])]
    total = sum(lengths) or 1
    keep_p = min(1.0, max_tokens_per_site / total)
    for seq in view.sequences():
        pick = rng.random(len(seq)) < keep_p
        for name, acts in seq.activations.items():
            per_name[name].append(np.asarray(acts[pick], dtype=np.float32))
    data.seq_lengths = lengths
    for site in view.sites:
        for layer in view.layers:
            name = tensor_name(site, layer)
            rows = np.concatenate(per_name[name]) if per_name[name] else np.zeros((0, 1))
            data.stats.append(
                SiteLayerStats(
                    name,
                    site,
                    layer,
                    np.linalg.norm(rows, axis=1) if len(rows) else np.zeros(0),
                    float(rows.mean()) if rows.size else 0.0,
                    float(rows.std()) if rows.size else 0.0,
                    len(rows),
                )
            )
    _from_markers(view, data)
    _from_events(view, data)
    _accuracy(view, data, str(manifest.get("dataset", {}).get("source", "")))
    return data


def _committed_markers(view: Any, units_total: int) -> dict[int, dict[str, Any]]:
    """The markers of committed units, by the rule `arcx inspect` counts them by."""
    from arcx_store.units import unit_states

    states = unit_states(view.storage, list(range(units_total)))
    return {u: st.marker for u, st in sorted(states.items()) if st.committed and st.marker}


def _from_markers(view: Any, data: ReportData) -> None:
    for unit, marker in _committed_markers(view, int(data.summary["unitsTotal"])).items():
        data.unit_tokens[unit] = {"kept": int(marker["tokens"])}
        data.skipped_lengths += [int(s.get("length", 0)) for s in marker.get("skipped", [])]


def _from_events(view: Any, data: ReportData) -> None:
    every = read_events(view.storage)
    events = [e for e in every if e.get("event") == "unit-committed"]
    for e in events:
        unit = int(e["unit"])
        if unit in data.unit_tokens and "tokensPadded" in e:
            data.unit_tokens[unit]["real"] = int(e["tokensReal"])
            data.unit_tokens[unit]["padded"] = int(e["tokensPadded"])
    if not events:
        return
    t0 = every[0]["time"]  # the first attempt's start event
    # The running rate of the attempt (tokens since it started / seconds since it started),
    # as the progress bar shows it: commits trail computation by one unit, so the rate
    # between two commits would swing with the pipeline, this one does not.
    data.throughput = [
        (float(e["time"]) - t0, float(e["tokensPerSec"])) for e in events if "tokensPerSec" in e
    ]


def _accuracy(view: Any, data: ReportData, dataset_source: str) -> None:
    sources = task_sources(dataset_source) if dataset_source else {}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for marker in _committed_markers(view, int(data.summary["unitsTotal"])).values():
        if not marker.get("predictions"):
            continue
        for line in view.storage.read_bytes(marker["predictions"]["key"]).splitlines():
            row = json.loads(line)
            c = counts[sources.get(str(row.get("taskId")), "unknown")]
            c[0] += bool(row.get("correct"))
            c[1] += 1
    data.accuracy_by_source = {k: (v[0], v[1]) for k, v in sorted(counts.items())}
