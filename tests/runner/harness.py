"""Helpers to run real `arcx run` processes (the pod environment contract) and read stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from arcx_store import layout
from arcx_store.parts import decode_part

from arcx.runner.demo import launch

# Tensors of a whole part, not of its token rows: statistics of the part's rows (they
# depend on how sequences were split over hosts and units) and per-sequence augmentations.
PER_PART = (f"{layout.STATS_PREFIX}.", "seq.")

TEST_TIMEOUT_S = 240


def write_config(path: Path, *, model: Path, tasks: Path, out: str, **sections: Any) -> Path:
    cfg: dict[str, Any] = {
        "model": {"source": str(model)},
        "dataset": {"source": str(tasks)},
        "extraction": {
            "layers": [1, 3],
            "sites": ["resid_post", "mlp_out"],
            "positions": "all",
            "dtype": "bfloat16",
        },
        "batching": {"tokensPerBatch": 2304, "maxSeqLen": 1152},
        "output": {"uri": out, "unitSize": 1},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def base_env(cache: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start(
    config: Path, processes: int, devices: int, env: dict[str, str], log_dir: Path
) -> list[subprocess.Popen[bytes]]:
    log_dir.mkdir(parents=True, exist_ok=True)
    return launch(config, processes, devices=devices, base_env=env, log_dir=log_dir)


def wait_all(procs: list[subprocess.Popen[bytes]], timeout: float = TEST_TIMEOUT_S) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for q in procs:
                if q.poll() is None:
                    q.send_signal(signal.SIGKILL)
            raise
    return codes


def run(
    config: Path, processes: int, devices: int, env: dict[str, str], log_dir: Path
) -> list[int]:
    return wait_all(start(config, processes, devices, env, log_dir))


def logs(log_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("process-*.log")))


def marker_paths(store: Path) -> list[Path]:
    """Every commit marker of a local store, in unit order."""
    return sorted((store / layout.UNITS_DIR).glob(f"*/{layout.MARKER_NAME}"))


def committed_files(store: Path) -> dict[str, bytes]:
    """Every file under units/ and predictions/ (what a committed store holds), by relative path."""
    out = {}
    for sub in (layout.UNITS_DIR, layout.PREDICTIONS_DIR):
        for p in sorted((store / sub).rglob("*")):
            if p.is_file():
                out[p.relative_to(store).as_posix()] = p.read_bytes()
    return out


def sequences(store: Path) -> dict[tuple[str, int], dict[str, bytes]]:
    """Per (task id, test index): the bytes of each tensor's rows, across all parts and units.

    Raises if a sequence appears twice (a task repeated)."""
    out: dict[tuple[str, int], dict[str, bytes]] = {}
    for marker_path in marker_paths(store):
        marker = json.loads(marker_path.read_text())
        for part in marker["parts"]:
            tensors, meta = decode_part((store / part["key"]).read_bytes())
            off = tensors["offsets"]
            for j, (task_id, test_index) in enumerate(json.loads(meta["sequences"])):
                key = (task_id, int(test_index))
                assert key not in out, f"sequence {key} stored twice"
                out[key] = {
                    n: t[off[j] : off[j + 1]].tobytes()
                    for n, t in tensors.items()
                    if n != "offsets" and not n.startswith(PER_PART)
                }
    return out
