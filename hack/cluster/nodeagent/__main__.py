"""``python -m hack.cluster.nodeagent``: the test node agent's command line."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
from pathlib import Path

from hack.cluster.kubeapi import Kube
from hack.cluster.nodeagent.agent import NodeAgent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Test node agent: stands in for the kubelet")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--nodes", required=True, help="JSON file: list of node specs")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--default-entrypoint", default="arcx")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = NodeAgent(
        Kube(args.kubeconfig, user_agent="arcx-node-agent"),
        json.loads(Path(args.nodes).read_text()),
        Path(args.workdir),
        shlex.split(args.default_entrypoint),
    )
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stopping.set())
    agent.run(Path(args.ready_file) if args.ready_file else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
