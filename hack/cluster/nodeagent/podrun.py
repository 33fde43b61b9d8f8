"""What the agent knows about one pod it runs: its address, directory, process and names."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    ip: str
    node: str
    dir: Path
    tpu: bool = False
    popen: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    restarts: int = 0
    exit_code: int | None = None
    terminating: bool = False
    finalised: bool = False
    hostnames: list[str] = field(default_factory=list)
    hosts_file: Path | None = None
    volumes: dict[str, Path] = field(default_factory=dict)

    @property
    def hostname(self) -> str:
        return self.hostnames[0] if self.hostnames else self.name

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None
