"""Child processes of the local cluster: one shared state for every component (after
envtest's one type per component on a shared process state). Each runs in its own session with
its log in a file; waits fail fast, with the log's tail, when the process exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class ProcessError(RuntimeError):
    """A component exited or timed out; the message names it and ends with its log tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "<no log>"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Procs:
    """The processes one component set started, in start order."""

    logs: Path
    running: list[Proc] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        *,
        log: Path | None = None,
        inherit_env: bool = True,
    ) -> Proc:
        """``log`` defaults to ``<logs>/<name>.log``; ``inherit_env=False`` runs with ``env``
        alone (a pod's process must not see the agent's environment)."""
        log = log or self.logs / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as fh:
            popen = subprocess.Popen(
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})} if inherit_env else dict(env or {}),
                cwd=cwd or self.logs.parent,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.running.append(proc)
        return proc

    def get(self, name: str) -> Proc:
        return next(p for p in self.running if p.name == name)

    def wait(self, proc: Proc, check: Callable[[], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ProcessError(
                    f"{proc.name} exited with {proc.popen.returncode} while {what}; "
                    f"log {proc.log}:\n{tail(proc.log)}"
                )
            if check():
                return
            time.sleep(0.2)
        raise ProcessError(f"timed out {what}; log {proc.log}:\n{tail(proc.log)}")

    def forget_popen(self, popen: subprocess.Popen[bytes] | None) -> None:
        """Stop tracking a process that has exited (its owner reaped it)."""
        self.running = [p for p in self.running if p.popen is not popen]

    def stop(self, name: str, timeout: float = 15) -> None:
        for p in [p for p in self.running if p.name == name]:
            _terminate(p, timeout)
            self.running.remove(p)

    def stop_all(self, timeout: float = 15) -> None:
        """SIGTERM in reverse start order, then wait for each (SIGKILL after ``timeout``)."""
        for p in reversed(self.running):
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        for p in reversed(self.running):
            _terminate(p, timeout)
        self.running.clear()

    def alive(self) -> dict[str, bool]:
        return {p.name: p.popen.poll() is None for p in self.running}


def _terminate(p: Proc, timeout: float) -> None:
    if p.popen.poll() is None:
        p.popen.send_signal(signal.SIGTERM)
    try:
        p.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.popen.kill()
        p.popen.wait()
