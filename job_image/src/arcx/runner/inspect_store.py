"""`arcx inspect <store>`: what a store holds, from its manifest, markers and predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from arcx_store import layout
from arcx_store.backends.base import Storage
from arcx_store.dtypes import itemsize
from arcx_store.errors import StoreFormatError
from arcx_store.header import HeaderError
from arcx_store.manifest import read_manifest
from arcx_store.parts import tensor_views
from arcx_store.stats import Moments
from arcx_store.units import unit_states

from arcx.prompts.annotations import Role
from arcx.runner.plan import UnitPlan


@dataclass
class StoreSummary:
    uri: str
    manifest: dict[str, Any]
    units_total: int = 0
    units_committed: int = 0
    tasks: int = 0
    sequences: int = 0
    tokens: int = 0
    bytes_parts: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    predictions: int = 0
    correct: int = 0
    # unit -> why its marker is not a commit (it is redone on resume)
    damaged: dict[int, str] = field(default_factory=dict)
    # unit -> why an earlier commit of it was discarded and the unit redone
    redone: dict[int, str] = field(default_factory=dict)
    # stored tokens by annotation role (format 3 parts; "unannotated" for older ones)
    roles: dict[str, int] = field(default_factory=dict)
    # "site.layer" -> the statistics of every stored token, merged over parts; top ids
    # are (unit, host, row in that part)
    stats: dict[str, Moments] = field(default_factory=dict)

    @property
    def activation_bytes_per_token(self) -> float:
        n = len(self.manifest["sites"]) * len(self.manifest["layers"])
        return self.bytes_parts / self.tokens / n if self.tokens and n else 0.0

    @property
    def ideal_bytes_per_token(self) -> int:
        return int(self.manifest["dModel"]) * itemsize(self.manifest["dtype"])

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.predictions if self.predictions else None


def summarize_store(storage: Storage) -> StoreSummary:
    manifest = read_manifest(storage)
    plan = UnitPlan.from_json(manifest["plan"])
    s = StoreSummary(uri=storage.uri, manifest=manifest, units_total=len(plan.units))
    for u, state in unit_states(storage, [unit.index for unit in plan.units]).items():
        if state.damaged:
            s.damaged[u] = state.problem or "damaged"
        marker = state.marker
        if marker is None or not state.committed:
            continue
        if marker.get("redone"):
            s.redone[u] = str(marker["redone"])
        s.units_committed += 1
        s.tasks += int(marker["tasks"])
        s.sequences += int(marker["sequences"])
        s.tokens += int(marker["tokens"])
        s.bytes_parts += sum(int(p["size"]) for p in marker["parts"])
        for p in marker["parts"]:
            _add_part(storage, s, u, str(p["key"]))
        s.skipped += marker.get("skipped", [])
        if marker.get("predictions"):
            for n, line in enumerate(storage.read_bytes(marker["predictions"]["key"]).splitlines()):
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                    raise StoreFormatError(
                        f"{storage.uri}/{marker['predictions']['key']} line {n + 1} is not JSON"
                    ) from None
                if not isinstance(row, dict):
                    continue
                s.predictions += 1
                s.correct += bool(row.get("correct"))
    return s


def _add_part(storage: Storage, s: StoreSummary, unit: int, key: str) -> None:
    """Count the part's tokens by role and merge its statistics (reads only those tensors)."""
    try:
        arrays, _ = tensor_views(storage.read_mapped(key))
    except HeaderError as err:
        raise StoreFormatError(f"{storage.uri}/{key}: {err}") from None
    if layout.ANN_ROLE in arrays:
        counts = np.bincount(np.asarray(arrays[layout.ANN_ROLE]) + 1, minlength=len(Role) + 1)
        names = ["unannotated", *(r.name.lower() for r in Role)]
        for name, n in zip(names, counts.tolist(), strict=False):
            if n:
                s.roles[name] = s.roles.get(name, 0) + n
    elif layout.TOKEN_IDS in arrays:
        s.roles["unannotated"] = s.roles.get("unannotated", 0) + len(arrays[layout.TOKEN_IDS])
    host = int(key.rsplit(layout.PART_PREFIX, 1)[-1].removesuffix(layout.PART_SUFFIX) or 0)
    for site in s.manifest["sites"]:
        for layer in s.manifest["layers"]:
            try:
                m = Moments.from_tensors(arrays, site, int(layer))
            except KeyError:
                continue  # a part written before format 3
            name = layout.tensor_name(site, int(layer))
            m = m.relabel(host).relabel(unit)
            s.stats[name] = s.stats[name].merge(m) if name in s.stats else m


def stats_json(m: Moments) -> dict[str, Any]:
    return {
        "count": m.count,
        "meanNorm": m.norm,
        "normOfMean": float(np.linalg.norm(m.mean)),
        "meanVariance": float(m.variance.mean()) if m.count else 0.0,
        "maxAbs": float(m.maxabs.max()) if m.count else 0.0,
        "maxAbsUnit": int(m.maxabs.argmax()) if m.count else -1,
        "largestNorms": [
            {"norm": float(v), "unit": int(i[0]), "host": int(i[1]), "row": int(i[2])}
            for v, i in zip(m.top_norm, m.top_ids, strict=True)
            if i[0] >= 0
        ],
    }


def scores(manifest: dict[str, Any]) -> bool:
    """Whether the store scored each answer (stores before the field: teacher forcing)."""
    return bool(manifest.get("scores", manifest.get("teacherForcing", False)))


def format_summary(s: StoreSummary) -> str:
    m = s.manifest
    lines = [
        f"store        {s.uri}",
        f"model        {m['model']['source']} (d_model {m['dModel']}, {m['model']['numLayers']} layers)",
        f"dataset      {m['dataset']['source']} (fingerprint {m['dataset']['fingerprint'][:16]})",
        f"sites        {', '.join(m['sites'])}",
        f"layers       {', '.join(str(x) for x in m['layers'])}",
        f"positions    {m['positions']}",
        f"dtype        {m['dtype']}",
        f"units        {s.units_committed}/{s.units_total} committed",
        f"tasks        {s.tasks}",
        f"sequences    {s.sequences} ({len(s.skipped)} skipped: longer than maxSeqLen)",
        f"tokens       {s.tokens}",
        f"bytes        {s.bytes_parts} in parts; {s.activation_bytes_per_token:.1f} bytes/token "
        f"per site and layer (d_model x dtype = {s.ideal_bytes_per_token})",
    ]
    lines.append(f"scores       {'yes' if scores(m) else 'no'} (teacher-forced answer accuracy)")
    if s.accuracy is not None:
        lines.append(f"accuracy     {s.correct}/{s.predictions} = {s.accuracy:.1%}")
    else:
        lines.append("accuracy     (no predictions stored)")
    if s.roles:
        lines.append("roles        " + ", ".join(f"{k} {v}" for k, v in s.roles.items()))
    for name, m in s.stats.items():
        j = stats_json(m)
        top = j["largestNorms"][0] if j["largestNorms"] else None
        where = (
            f"; largest norm {top['norm']:.3g} (unit {top['unit']} row {top['row']})" if top else ""
        )
        lines.append(
            f"stats        {name}: {m.count} tokens, mean norm {m.norm:.4g}, "
            f"mean variance {j['meanVariance']:.4g}, max |x| {j['maxAbs']:.4g} "
            f"(unit {j['maxAbsUnit']}){where}"
        )
    for u, why in sorted(s.damaged.items()):
        lines.append(f"  damaged    unit {u}: {why} (a resume redoes it)")
    for u, why in sorted(s.redone.items()):
        lines.append(f"  redone     unit {u}: {why}")
    for sk in s.skipped[:10]:
        lines.append(
            f"  skipped    task {sk['taskId']} test {sk['testIndex']}: {sk['length']} tokens"
        )
    return "\n".join(lines)


def summary_json(s: StoreSummary) -> dict[str, Any]:
    m = s.manifest
    return {
        "uri": s.uri,
        "model": m["model"],
        "dataset": m["dataset"],
        "sites": m["sites"],
        "layers": m["layers"],
        "positions": m["positions"],
        "dtype": m["dtype"],
        "dModel": m["dModel"],
        "unitsTotal": s.units_total,
        "unitsCommitted": s.units_committed,
        "tasks": s.tasks,
        "sequences": s.sequences,
        "sequencesSkipped": len(s.skipped),
        "tokens": s.tokens,
        "bytesInParts": s.bytes_parts,
        "bytesPerTokenPerSite": s.activation_bytes_per_token,
        "idealBytesPerTokenPerSite": s.ideal_bytes_per_token,
        "predictions": s.predictions,
        "correct": s.correct,
        "accuracy": s.accuracy,
        "scores": scores(m),
        "unitsDamaged": {str(u): why for u, why in sorted(s.damaged.items())},
        "unitsRedone": {str(u): why for u, why in sorted(s.redone.items())},
        "tokensByRole": dict(s.roles),
        "stats": {name: stats_json(m) for name, m in s.stats.items()},
    }
