"""Resume checks, end to end: a real `arcx run` over a damaged store redoes exactly the units
whose marker does not parse or whose files do not match it, says why in its events and in
`arcx inspect`, removes a killed writer's temporary files, and ends with the same bytes as
an undamaged run. A flipped byte (same size, no backend checksum locally) needs the full
sha256 check, ``--verify-on-resume`` / ``ARCX_VERIFY_ON_RESUME=1``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from arcx_store import layout

from tests.runner import harness

pytestmark = pytest.mark.slow


def _rerun(tmp_path: Path, store: Path, tiny_model, arc_tasks, jax_cache, **env: str) -> str:
    cfg = harness.write_config(
        tmp_path / "job.yaml", model=tiny_model, tasks=arc_tasks, out=str(store)
    )
    logs = tmp_path / f"logs-{len(list(tmp_path.glob('logs-*')))}"
    codes = harness.run(cfg, 1, 1, harness.base_env(jax_cache, **env), logs)
    text = harness.logs(logs)
    assert codes == [0], text[-3000:]
    return text


def _events(log: str, name: str) -> list[dict]:
    out = []
    for line in log.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("event") == name:
            out.append(row)
    return out


def _without_redone(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files, with each marker's ``redone`` note taken out (the one expected change)."""
    out = {}
    for key, data in files.items():
        if layout.unit_of_marker(key) is not None:
            marker = json.loads(data)
            marker.pop("redone", None)
            data = json.dumps(marker, sort_keys=True).encode()
        out[key] = data
    return out


def test_damaged_units_are_redone_and_say_why(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache
):
    reference = harness.committed_files(run_store(1, 1))
    store = tmp_path / "store"
    shutil.copytree(run_store(1, 1), store)
    truncated = store / layout.part_key(1, 0)
    truncated.write_bytes(truncated.read_bytes()[:100])
    (store / layout.part_key(3, 0)).unlink()
    (store / layout.marker_key(5)).write_bytes(b"\x00 not json")
    (store / layout.marker_key(6)).write_text("[]")
    leftover = store / layout.unit_dir(0) / f".part-00000.safetensors.k1ll3d{layout.TEMP_SUFFIX}"
    leftover.write_bytes(b"a killed writer's half part")

    log = _rerun(tmp_path, store, tiny_model, arc_tasks, jax_cache)
    redo = {e["unit"]: e["reason"] for e in _events(log, "unit-redo")}
    assert sorted(redo) == [1, 3, 5, 6], redo
    assert "has 100 bytes" in redo[1] and "is missing" in redo[3]
    assert "does not parse" in redo[5] and "JSON list" in redo[6]
    assert '"unitsToDo": 4' in log and '"unitsAlreadyCommitted": 4' in log

    assert not leftover.exists(), "a finished store holds exactly what its markers name"
    after = harness.committed_files(store)
    assert _without_redone(after) == _without_redone(reference)
    for u in (1, 3, 5, 6):
        assert json.loads(after[layout.marker_key(u)])["redone"] == redo[u]

    inspect = subprocess.run(
        [sys.executable, "-m", "arcx.cli", "inspect", "--json", str(store)],
        capture_output=True,
        text=True,
    )
    summary = json.loads(inspect.stdout)
    assert sorted(summary["unitsRedone"]) == ["1", "3", "5", "6"]
    assert summary["unitsDamaged"] == {} and summary["unitsCommitted"] == 8
    verify = subprocess.run(
        [sys.executable, "-m", "arcx.cli", "verify", str(store)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_flipped_byte_is_redone_with_the_full_check(
    run_store, tmp_path, tiny_model, arc_tasks, jax_cache
):
    reference = harness.committed_files(run_store(1, 1))
    store = tmp_path / "store"
    shutil.copytree(run_store(1, 1), store)
    victim = store / layout.part_key(2, 0)
    raw = bytearray(victim.read_bytes())
    raw[-7] ^= 0x01
    victim.write_bytes(bytes(raw))

    # Locally sizes are all a resume checks for free: the flip is not seen ...
    log = _rerun(tmp_path, store, tiny_model, arc_tasks, jax_cache)
    assert '"unitsToDo": 0' in log and not _events(log, "unit-redo")
    # ... until the full check is asked for.
    log = _rerun(tmp_path, store, tiny_model, arc_tasks, jax_cache, ARCX_VERIFY_ON_RESUME="1")
    (event,) = _events(log, "unit-redo")
    assert event["unit"] == 2 and "sha256" in event["reason"]
    assert _without_redone(harness.committed_files(store)) == _without_redone(reference)
