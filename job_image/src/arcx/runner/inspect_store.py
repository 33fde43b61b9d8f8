"""`arcx inspect <store>`: what a store holds, from its manifest, markers and predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from arcx.runner.commit import read_marker
from arcx.runner.manifest import read_manifest
from arcx.runner.plan import UnitPlan
from arcx.storage import Storage

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


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

    @property
    def activation_bytes_per_token(self) -> float:
        n = len(self.manifest["sites"]) * len(self.manifest["layers"])
        return self.bytes_parts / self.tokens / n if self.tokens and n else 0.0

    @property
    def ideal_bytes_per_token(self) -> int:
        return int(self.manifest["dModel"]) * DTYPE_BYTES[self.manifest["dtype"]]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.predictions if self.predictions else None


def summarize_store(storage: Storage) -> StoreSummary:
    manifest = read_manifest(storage)
    plan = UnitPlan.from_json(manifest["plan"])
    s = StoreSummary(uri=storage.uri, manifest=manifest, units_total=len(plan.units))
    for unit in plan.units:
        marker = read_marker(storage, unit.index)
        if marker is None:
            continue
        s.units_committed += 1
        s.tasks += int(marker["tasks"])
        s.sequences += int(marker["sequences"])
        s.tokens += int(marker["tokens"])
        s.bytes_parts += sum(int(p["size"]) for p in marker["parts"])
        s.skipped += marker.get("skipped", [])
        if marker.get("predictions"):
            for line in storage.read_bytes(marker["predictions"]["key"]).splitlines():
                row = json.loads(line)
                s.predictions += 1
                s.correct += bool(row.get("correct"))
    return s


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
    if s.accuracy is not None:
        lines.append(f"accuracy     {s.correct}/{s.predictions} = {s.accuracy:.1%}")
    else:
        lines.append("accuracy     (no predictions stored)")
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
    }
