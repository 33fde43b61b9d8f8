"""`arcx-operator`: the operator process (kopf + the official kubernetes client).

Starts the health/metrics endpoint, waits to become leader on a Lease (unless disabled),
then runs kopf with the reconcile handlers until stopped or leadership is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import kopf
from kubernetes import client, config

from arcx_operator import __version__, handlers
from arcx_operator import constants as c
from arcx_operator.kube import Kube
from arcx_operator.leader import LeaderElector
from arcx_operator.observability import Health, Metrics, configure_logging, serve
from arcx_operator.podspec import VOLUME_SOURCES
from arcx_operator.policy import Policy, parse_list
from arcx_operator.progress import ProgressReader

log = logging.getLogger("arcx_operator")

EXIT_CONFIG = 2
EXIT_LOST_LEADERSHIP = 3
SHUTDOWN_GRACE_S = 10.0
LOST_GRACE_S = 2.0


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="arcx-operator",
        description="Reconcile ArcExtractionJob resources into ConfigMaps and JobSets.",
    )
    p.add_argument("--version", action="version", version=f"arcx-operator {__version__}")
    p.add_argument(
        "--kubeconfig",
        default=env("KUBECONFIG"),
        help="kubeconfig file; in-cluster config when omitted",
    )
    p.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch only this namespace (repeatable); all namespaces when omitted",
    )
    p.add_argument(
        "--default-job-image",
        default=env("ARCX_DEFAULT_JOB_IMAGE"),
        help="job image for resources without spec.image",
    )
    policy = p.add_argument_group(
        "admin policy",
        "what ArcExtractionJobs may ask the pods for; comma-separated lists, '*' = any, "
        "an empty value = none, the flag absent = any (the chart sets all of them)",
    )
    policy.add_argument(
        "--allowed-image-repositories",
        default=env("ARCX_ALLOWED_IMAGE_REPOSITORIES"),
        metavar="LIST",
        help="repositories spec.image may name (an entry ending in / allows all below it)",
    )
    policy.add_argument(
        "--allowed-service-accounts",
        default=env("ARCX_ALLOWED_SERVICE_ACCOUNTS"),
        metavar="LIST",
        help="service accounts spec.serviceAccountName may name besides default",
    )
    policy.add_argument(
        "--allowed-volume-types",
        default=env("ARCX_ALLOWED_VOLUME_TYPES"),
        metavar="LIST",
        help="volume sources spec.volumes may use (hostPath, secret, persistentVolumeClaim, ...)",
    )
    policy.add_argument(
        "--denied-env",
        default=env("ARCX_DENIED_ENV"),
        metavar="LIST",
        help="env names spec.env may not set, besides the ones always refused",
    )
    p.add_argument(
        "--health-address", default="0.0.0.0", help="bind address of /healthz, /readyz, /metrics"
    )
    p.add_argument(
        "--health-port",
        type=int,
        default=int(env("ARCX_HEALTH_PORT", "8080")),
        help="port of /healthz, /readyz and /metrics (0 disables)",
    )
    p.add_argument(
        "--sync-interval",
        type=float,
        default=5.0,
        help="seconds between level-triggered status syncs of each resource",
    )
    p.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        help="read each output store at most this often (seconds)",
    )
    p.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold a Lease so only one replica acts (default on)",
    )
    p.add_argument("--lease-name", default="arcx-operator")
    p.add_argument("--lease-namespace", default=env("POD_NAMESPACE", "default"))
    p.add_argument("--lease-duration", type=int, default=15, help="seconds")
    p.add_argument("--identity", default=env("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}")
    p.add_argument("--log-format", choices=["json", "text"], default="json")
    p.add_argument("--log-level", default="INFO")
    return p


def policy_from_args(args: argparse.Namespace) -> Policy:
    """The admin policy from the flags; ValueError names a flag whose value is not usable."""
    types = parse_list(args.allowed_volume_types)
    unknown = sorted(set(types or ()) - set(VOLUME_SOURCES))
    if unknown:
        raise ValueError(
            f"--allowed-volume-types: unknown volume type(s) {', '.join(unknown)}; "
            f"choose from {', '.join(VOLUME_SOURCES)}"
        )
    return Policy(
        image_repositories=parse_list(args.allowed_image_repositories),
        service_accounts=parse_list(args.allowed_service_accounts),
        volume_types=types,
        denied_env=parse_list(args.denied_env) or (),
    )


def _load_kube_config(kubeconfig: str | None, target: client.Configuration | None = None) -> None:
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=target)
    else:
        config.load_incluster_config(client_configuration=target)


def _connection_info(kubeconfig: str | None) -> kopf.ConnectionInfo:
    """kopf's credentials, read afresh from the same source as the client's (tokens rotate)."""
    cfg = client.Configuration()
    _load_kube_config(kubeconfig, cfg)
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook(cfg)
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    scheme, token = None, None
    if auth:
        scheme, _, token = auth.partition(" ") if " " in auth else ("Bearer", "", auth)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        scheme=scheme,
        token=token,
        default_namespace=None,
    )


def _settings(settings: kopf.OperatorSettings, args: argparse.Namespace) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{c.GROUP}/finalizer"
    settings.posting.reporting_component = "arcx-operator"
    settings.posting.reporting_instance = args.identity
    settings.posting.level = logging.WARNING  # Events come from the handlers, not kopf's logs
    # Re-open watches regularly so a silently dead connection cannot stall us (kopf#1276).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.watching.inactivity_timeout = 600


def _exit_watchdog(stop: threading.Event, lost: threading.Event) -> None:
    """Bound the shutdown: kopf may wait long on a dead API server; a replica that lost its
    lease must stop acting well before another one takes over."""

    def watch() -> None:
        stop.wait()
        time.sleep(LOST_GRACE_S if lost.is_set() else SHUTDOWN_GRACE_S)
        log.error("shutdown is taking too long; exiting now")
        logging.shutdown()
        os._exit(EXIT_LOST_LEADERSHIP if lost.is_set() else 0)

    threading.Thread(target=watch, name="exit-watchdog", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    if args.log_level.upper() != "DEBUG":
        # kopf reports every timer tick at INFO; the handlers log what changes.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        policy = policy_from_args(args)
    except ValueError as err:
        log.error(str(err))
        return EXIT_CONFIG
    try:
        _load_kube_config(args.kubeconfig)
    except config.ConfigException as err:
        where = args.kubeconfig or "the in-cluster service account"
        log.error(f"cannot load Kubernetes credentials from {where}: {err}; pass --kubeconfig")
        return EXIT_CONFIG
    metrics, health = Metrics(), Health()
    if args.health_port:
        serve(args.health_address, args.health_port, metrics, health)
    ctx = handlers.Context(
        kube=Kube(client.ApiClient()),
        metrics=metrics,
        health=health,
        progress=ProgressReader(min_interval_s=args.progress_interval),
        default_image=args.default_job_image,
        policy=policy,
    )
    registry = kopf.OperatorRegistry()
    handlers.install(registry, ctx, args.sync_interval)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        _settings(settings, args)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return _connection_info(args.kubeconfig)

    stop = threading.Event()
    lost = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _exit_watchdog(stop, lost)
    health.ready.set()

    elector = None
    if args.leader_election:
        coord = client.CoordinationV1Api(client.ApiClient())
        elector = LeaderElector(
            coord,
            args.lease_name,
            args.lease_namespace,
            args.identity,
            lease_duration_s=args.lease_duration,
        )

        def on_lost() -> None:
            metrics.leader.set(0)
            lost.set()
            stop.set()

        elector.start(on_acquired=lambda: None, on_lost=on_lost)
        log.info(
            "waiting for leadership", extra={"lease": f"{args.lease_namespace}/{args.lease_name}"}
        )
        while not elector.is_leader.wait(1.0):
            if stop.is_set():
                return 0
    metrics.leader.set(1)
    health.leading.set()
    health.heartbeat()
    log.info(
        "starting reconcile loop", extra={"identity": args.identity, "namespaces": args.namespace}
    )
    ns_kwargs: dict[str, Any] = (
        {"namespaces": args.namespace} if args.namespace else {"clusterwide": True}
    )
    try:
        asyncio.run(kopf.operator(registry=registry, standalone=True, stop_flag=stop, **ns_kwargs))
    finally:
        if elector is not None:
            elector.stop()
    if lost.is_set():
        log.error("exiting: leadership lost")
        return EXIT_LOST_LEADERSHIP
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
