"""``python -m hack.cluster up|down|env``: the local control plane from the command line.

python -m hack.cluster up [--workdir DIR] [--build]   start, print env lines, stay in the
    [--node real|agent]                               foreground until Ctrl-C / SIGTERM
                                                      (real: containerd and a kubelet run
                                                      the project's images; agent: the
                                                      process-running test node agent)
python -m hack.cluster up --detach ...                start in the background and return
python -m hack.cluster down [--workdir DIR]           stop a detached control plane
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hack.cluster.cluster import local_cluster
from hack.cluster.tools import find_tools

DEFAULT_WORKDIR = Path("/tmp/arcx-cluster")


def _up(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    if args.detach:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "env").unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "hack.cluster",
            "up",
            f"--workdir={workdir}",
            f"--node={args.node}",
        ]
        if args.build:
            argv.append("--build")
        with (workdir / "up.log").open("ab") as fh:
            p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        while not (workdir / "env").exists():
            if p.poll() is not None:
                print((workdir / "up.log").read_text()[-4000:], file=sys.stderr)
                return 1
            time.sleep(0.5)
        print((workdir / "env").read_text(), end="")
        return 0
    if args.build:
        find_tools(build=True)
    stop = False

    def handler(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    (workdir).mkdir(parents=True, exist_ok=True)
    (workdir / "pid").write_text(str(os.getpid()))
    try:
        with local_cluster(workdir, real_node=args.node == "real") as cluster:
            if cluster.images:
                with (workdir / "env").open("a") as fh:
                    fh.writelines(
                        f"ARCX_IMAGE_{k.upper().replace('-', '_')}={v}\n"
                        for k, v in cluster.images.items()
                    )
            print((workdir / "env").read_text(), end="", flush=True)
            while not stop:
                time.sleep(0.5)
    finally:
        (workdir / "env").unlink(missing_ok=True)
        (workdir / "pid").unlink(missing_ok=True)
    return 0


def _down(args: argparse.Namespace) -> int:
    pid_file = Path(args.workdir) / "pid"
    if not pid_file.exists():
        print(f"no control plane running from {args.workdir}", file=sys.stderr)
        return 1
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        print(f"control plane (pid {pid}) was not running", file=sys.stderr)
        return 0
    for _ in range(120):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        time.sleep(0.5)
    print(f"control plane (pid {pid}) did not stop in 60s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hack.cluster", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the control plane")
    up.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument("--build", action="store_true", help="build missing binaries first")
    up.add_argument("--node", choices=["real", "agent"], default="real")
    down = sub.add_parser("down", help="stop a detached control plane")
    down.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    args = ap.parse_args(argv)
    return _up(args) if args.cmd == "up" else _down(args)


if __name__ == "__main__":
    sys.exit(main())
