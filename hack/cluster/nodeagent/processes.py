"""Pod processes, on the cluster's shared process state (hack/cluster/procs.py): each pod
is one process group under ``unshare --mount --uts``, its output in ``<pod dir>/log``, its
exit reported back as an event; stopped with SIGTERM, the grace period, then SIGKILL to the
group, as the kubelet does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from hack.cluster.nodeagent.podenv import ProcessSpec
from hack.cluster.procs import Procs


def killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def terminate(popen: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL to the process group after the grace period."""
    try:
        popen.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        popen.wait(timeout=max(grace, 0.0))
    except subprocess.TimeoutExpired:
        killpg(popen.pid, signal.SIGKILL)


def exit_code(returncode: int) -> int:
    """A container's exit code: 128 + the signal for a process killed by one."""
    return 128 - returncode if returncode < 0 else returncode


class PodProcesses:
    def __init__(self, logs: Path, on_exit: Callable[[str, int], None]) -> None:
        self.procs = Procs(logs)
        self.on_exit = on_exit

    def launch(
        self, uid: str, spec: ProcessSpec, mount_script: str, log: Path
    ) -> subprocess.Popen[bytes]:
        """Run the pod's process with exactly the pod's env (nothing of the agent's)."""
        argv = ["unshare", "--mount", "--uts", "--propagation", "private", "--"]
        argv += ["/bin/sh", "-c", mount_script + 'exec "$@"', "sh", *spec.argv]
        proc = self.procs.spawn(
            uid, argv, env=spec.env, cwd=Path(spec.cwd), log=log, inherit_env=False
        )
        threading.Thread(target=self._wait, args=(uid, proc.popen), daemon=True).start()
        return proc.popen

    def _wait(self, uid: str, popen: subprocess.Popen[bytes]) -> None:
        rc = popen.wait()
        killpg(popen.pid, signal.SIGKILL)  # what a container's cgroup teardown would do
        self.on_exit(uid, exit_code(rc))

    def stop_after(self, popen: subprocess.Popen[bytes], grace: float) -> None:
        threading.Thread(target=terminate, args=(popen, grace), daemon=True).start()

    def kill(self, popen: subprocess.Popen[bytes] | None) -> None:
        if popen is not None and popen.poll() is None:
            killpg(popen.pid, signal.SIGKILL)

    def forget(self, popen: subprocess.Popen[bytes] | None) -> None:
        self.procs.forget_popen(popen)
