"""Prometheus metrics, the /healthz, /readyz and /metrics endpoint, and JSON logs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from arcx_operator.constants import Phase


class Metrics:
    """The operator's metrics in their own registry (tests make as many as they like)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "arcx_operator_reconciles",
            "Reconcile passes by result",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "arcx_operator_errors",
            "Errors by where they happened",
            ["stage"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "arcx_operator_jobs", "ArcExtractionJobs by phase", ["phase"], registry=self.registry
        )
        self.leader = Gauge(
            "arcx_operator_leader", "1 while this replica holds the lease", registry=self.registry
        )
        self._phases: dict[str, str] = {}
        self._lock = threading.Lock()
        for phase in Phase:
            self.jobs.labels(phase=phase.value).set(0)

    def set_phase(self, key: str, phase: str | None) -> None:
        with self._lock:
            if phase is None:
                self._phases.pop(key, None)
            else:
                self._phases[key] = phase
            counts = {p.value: 0 for p in Phase}
            for p in self._phases.values():
                counts[p] = counts.get(p, 0) + 1
            for p, n in counts.items():
                self.jobs.labels(phase=p).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Health:
    """Liveness: the reconcile loop has shown a heartbeat recently (or is not leading yet).
    Readiness: the process finished starting up."""

    def __init__(
        self, stale_after_s: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.ready = threading.Event()
        self.leading = threading.Event()
        self._beat = clock()

    def heartbeat(self) -> None:
        self._beat = self.clock()

    def alive(self) -> bool:
        return not self.leading.is_set() or self.clock() - self._beat < self.stale_after_s


def serve(host: str, port: int, metrics: Metrics, health: Health) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"reconcile loop stalled\n")
            elif self.path == "/readyz":
                ok = health.ready.is_set()
                self._send(200 if ok else 503, b"ok\n" if ok else b"starting\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # probes are not news
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
