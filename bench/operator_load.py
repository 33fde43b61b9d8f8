"""Operator benchmark on the local control plane: N ArcExtractionJobs applied at once.

    python bench/operator_load.py [--jobs 50]

Prints: seconds from the first create until every JobSet exists; API requests the operator
made per resource (from the API server's audit log, by the operator ServiceAccount's
username), split by verb and resource; the operator process's peak resident memory
(VmHWM). The resources are the CPU sample with ``suspend: true``, so the JobSets are
created but no pod runs: the numbers are the operator's own work.
Needs the binaries of hack/tools/build.sh.
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's `operator`, and a script's directory comes
# first on sys.path: drop it before anything imports `operator`.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hack.cluster import aej  # noqa: E402
from hack.cluster.arcx_system import start_arcx  # noqa: E402
from hack.cluster.cluster import local_cluster  # noqa: E402
from hack.cluster.waiting import wait_for  # noqa: E402


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _audit_requests(
    audit_log: Path, username: str, since: float, until: float
) -> list[dict[str, str]]:
    out = []
    for line in audit_log.read_text().splitlines():
        ev = json.loads(line)
        if ev.get("stage") != "ResponseComplete" or ev["user"].get("username") != username:
            continue
        ts = (
            time.mktime(time.strptime(ev["requestReceivedTimestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
            - time.timezone
        )
        if since - 1 <= ts <= until + 1:
            ref = ev.get("objectRef", {})
            res = ref.get("resource", "?") + (
                "/" + ref["subresource"] if ref.get("subresource") else ""
            )
            out.append({"verb": ev["verb"], "resource": res})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument(
        "--settle", type=float, default=15.0, help="seconds counted after the last JobSet"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="arcx-bench-operator-"))
    # The operator as a local process (its requests are what is counted): the node agent.
    with local_cluster(work / "cp", audit=True, real_node=False) as cluster:
        system = start_arcx(cluster, work)
        assert system.operator and system.operator.popen
        system.operator.stop()  # restart with the chart's default intervals
        system.operator.extra_args = ["--sync-interval=5", "--progress-interval=10"]
        system.operator.start()
        time.sleep(3)
        kube = cluster.kube
        ns = "bench"
        kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
        wait_for(
            "default SA",
            lambda: kube.get_or_none(f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
        )
        model = work / "model"  # never read: the JobSets stay suspended
        bodies = []
        for i in range(args.jobs):
            b = aej.cpu_job(f"bench-{i:03d}", model_dir=model, output=work / "out" / str(i))
            b["spec"]["suspend"] = True
            bodies.append(b)
        wait_for(
            "the operator to lead",
            lambda: kube.get_or_none(
                f"/apis/coordination.k8s.io/v1/namespaces/{system.namespace}/leases/arcx-operator"
            ),
        )
        time.sleep(2)
        t0 = time.time()
        threads = [threading.Thread(target=aej.create, args=(kube, ns, b)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_created = time.time()

        def all_jobsets() -> bool:
            return len(kube.get(aej.jobset_path(ns))["items"]) >= args.jobs

        wait_for("every JobSet", all_jobsets, timeout=600, interval=0.2)
        t_done = time.time()
        time.sleep(args.settle)
        t_end = time.time()
        peak = _peak_rss_mib(system.operator.popen.pid)
        time.sleep(2)  # the audit backend flushes every second
        user = f"system:serviceaccount:{system.namespace}:{system.service_account}"
        reqs = _audit_requests(cluster.control_plane.audit_log, user, t0, t_end)  # type: ignore[union-attr]
        by = collections.Counter(f"{r['verb']} {r['resource']}" for r in reqs)

    print(f"# arcx operator benchmark: {args.jobs} ArcExtractionJobs created at once (suspended)")
    print(
        f"machine: {os.cpu_count()} CPUs; local control plane (hack/cluster), operator as a local process"
    )
    print()
    print("| metric | value |")
    print("|---|---|")
    print(f"| create calls returned after | {t_created - t0:.2f} s |")
    print(f"| every JobSet exists after | {t_done - t0:.2f} s |")
    print(
        f"| operator API requests, first create to +{args.settle:.0f} s after the last JobSet | {len(reqs)} |"
    )
    print(f"| requests per resource | {len(reqs) / args.jobs:.1f} |")
    print(f"| operator peak RSS (VmHWM) | {peak:.0f} MiB |")
    print()
    print("| verb resource | requests | per resource |")
    print("|---|---|---|")
    for key, n in by.most_common():
        print(f"| {key} | {n} | {n / args.jobs:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
