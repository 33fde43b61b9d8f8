"""Commits of one slice's units: the pending part write, the barrier, the marker, and the
resume check that decides which committed units stand.

Every host hands its part to the writer thread and goes on computing the next unit; when
that unit is done, ``Committer.finish`` (collective: every process calls it at the same
point) waits for this host's write, gathers every host's record (a barrier: each part's
size, sha256 and crc32c, or a write error), and host 0 writes the predictions
file and the create-only marker, then removes the unit's strays.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from arcx_store import layout
from arcx_store.backends.base import Storage
from arcx_store.errors import StorageError
from arcx_store.markers import FileInfo, build_marker, commit_unit, remove_strays
from arcx_store.parts import encode_part
from arcx_store.units import UnitState, discard_marker, unit_states

from arcx.runner import sync
from arcx.runner.progress import log_event

PART_RECORD_BYTES = 512


@dataclass(frozen=True)
class UnitSummary:
    """What a unit's marker records besides its files."""

    unit: int
    num_tasks: int
    num_sequences: int
    num_tokens: int
    skipped: list[dict[str, Any]]


@dataclass
class PendingCommit:
    """A unit computed and handed to the writer thread, not yet committed."""

    summary: UnitSummary
    predictions: dict[int, dict[str, Any]]
    record: Future[bytes]  # this host's FileInfo as JSON (empty: no part), when written


class Committer:
    """Owns the unit whose part is being written, and commits it."""

    def __init__(
        self,
        storage: Storage,
        *,
        process_id: int,
        write_predictions: bool,
        on_written: Callable[[int, float], None] = lambda nbytes, seconds: None,
        on_committed: Callable[[int], None] = lambda unit: None,
        pause_s: float = 0.0,
    ) -> None:
        self.storage = storage
        self.process_id = process_id
        self.is_host0 = process_id == 0
        self.write_predictions = write_predictions
        self.on_written = on_written
        self.on_committed = on_committed
        self.pause_s = pause_s  # tests widen the commit window to kill a process inside it
        self.pending: PendingCommit | None = None
        # unit -> why its earlier commit was discarded; the new marker records it
        self.redone: dict[int, str] = {}
        self._writer: ThreadPoolExecutor | None = None  # started by the first submit

    def close(self) -> None:
        """Wait for the writer thread to end (a later submit starts a new one)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)

    # -- resume -------------------------------------------------------------------------

    def committed_flags(self, units: list[int], *, full: bool = False) -> list[bool]:
        """Collective: which units stand committed (host 0's view decides, so every process
        skips the same units). A unit whose marker does not parse or whose files do not
        match it is redone: host 0 logs why and discards its marker."""
        flags = np.zeros(len(units), np.uint8)
        if self.is_host0:
            for i, state in enumerate(unit_states(self.storage, units, full=full).values()):
                flags[i] = self._settle(state)
        records = sync.gather_records(flags.tobytes(), max(len(units), 1))
        return [bool(b) for b in records[0][: len(units)]]

    def _settle(self, state: UnitState) -> bool:
        if state.committed:
            for key in state.strays:  # a killed writer's temp file, an older attempt's part
                self.storage.delete(key)
            return True
        if state.damaged:
            reason = state.problem or "damaged"
            log_event("unit-redo", unit=state.unit, reason=reason)
            self.redone[state.unit] = reason
            discard_marker(self.storage, state.unit)
        return False

    # -- commits ------------------------------------------------------------------------

    def submit(
        self,
        summary: UnitSummary,
        tensors: dict[str, np.ndarray],
        metadata: dict[str, Any],
        predictions: dict[int, dict[str, Any]],
        *,
        owned: bool,
    ) -> None:
        """Start writing this host's part in the background (``owned``: this host holds a
        copy of the rows it writes); the unit is committed by the next ``finish``."""
        assert self.pending is None, "finish() the pending unit first"
        key = layout.part_key(summary.unit, self.process_id)

        def write() -> bytes:
            if not owned:
                return b""
            t0 = time.monotonic()
            data = encode_part(tensors, metadata)
            try:
                stat = self.storage.write_bytes(key, data)
            except StorageError as err:  # told to every process at the barrier
                return json.dumps({"error": str(err)[: PART_RECORD_BYTES - 64]}).encode()
            info = FileInfo.of(key, data)
            if stat.crc32c and stat.crc32c != info.crc32c:  # the backend holds other bytes
                return json.dumps(
                    {
                        "error": f"{key}: stored crc32c {stat.crc32c} is not the "
                        f"crc32c {info.crc32c} of the bytes sent"
                    }
                ).encode()
            self.on_written(len(data), time.monotonic() - t0)
            return json.dumps(info.to_json()).encode()

        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arcx-writer")
        self.pending = PendingCommit(summary, predictions, self._writer.submit(write))

    def finish(self) -> None:
        """Commit the unit whose part is being written (collective: every process calls it)."""
        pc, self.pending = self.pending, None
        if pc is None:
            return
        record = pc.record.result()  # this host's part is written (or the error surfaces)
        # Barrier: every host has written its part before host 0 sees the records.
        records = [
            json.loads(r.rstrip(b"\0"))
            for r in sync.gather_records(record, PART_RECORD_BYTES)
            if r.rstrip(b"\0")
        ]
        s = pc.summary
        failed = [r["error"] for r in records if "error" in r]
        if failed:  # every process stops, the unit stays uncommitted
            raise StorageError(f"unit {s.unit}: a part could not be written: {failed[0]}")
        if not self.is_host0:
            return
        parts = [FileInfo(**r) for r in records]
        pred_info = None
        if self.write_predictions:
            lines = [json.dumps(pc.predictions[i], sort_keys=True) for i in sorted(pc.predictions)]
            blob = "".join(line + "\n" for line in lines).encode()
            pkey = layout.predictions_key(s.unit)
            self.storage.write_bytes(pkey, blob)
            pred_info = FileInfo.of(pkey, blob)
        marker = build_marker(
            s.unit,
            parts=parts,
            predictions=pred_info,
            num_tasks=s.num_tasks,
            num_sequences=s.num_sequences,
            num_tokens=s.num_tokens,
            skipped=s.skipped,
            redone=self.redone.get(s.unit),
        )
        log_event("commit-start", unit=s.unit)
        if self.pause_s:
            time.sleep(self.pause_s)
        commit_unit(self.storage, s.unit, marker)
        remove_strays(self.storage, s.unit, json.loads(marker))
        self.on_committed(s.unit)
