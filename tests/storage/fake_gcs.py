"""A real GCS-protocol server for tests: fake-gcs-server on loopback, and a fault proxy.

fake-gcs-server (github.com/fsouza/fake-gcs-server, built from its pinned Go module by
hack/tools/fake-gcs-server.sh) speaks the JSON API google-cloud-storage uses and honours
``ifGenerationMatch``, so create-only writes are tested for real.

``FaultProxy`` is a small HTTP proxy of our own in front of it, on loopback, because no
real server fails on request: it forwards every request unchanged, except that the next
``fail_next`` requests get a 503 and the next ``drop_next`` have their connection closed
without an answer (a dropped connection, as the client sees it).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_gcs_binary() -> str:
    """Path of the fake-gcs-server binary (built once into the tools cache); skip if impossible."""
    proc = subprocess.run(
        [str(REPO / "hack/tools/fake-gcs-server.sh")], capture_output=True, text=True
    )
    if proc.returncode != 0:
        msg = f"fake-gcs-server could not be built: {proc.stderr[-800:]}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return proc.stdout.strip().splitlines()[-1]


@contextmanager
def fake_gcs_server(
    log_dir: Path, *, port: int | None = None, external_url: str | None = None
) -> Iterator[str]:
    """Start fake-gcs-server (in-memory) on a loopback port; yield its http:// endpoint.

    ``external_url`` is where it tells clients to send resumable-upload chunks (the fault
    proxy's address, so chunks pass through it too)."""
    binary = fake_gcs_binary()
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(log_dir / "fake-gcs-server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-external-url", external_url or endpoint, "-public-host", f"127.0.0.1:{port}",
         "-backend", "memory", "-log-level", "warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"fake-gcs-server did not start; see {log.name}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class FaultProxy:
    """HTTP proxy on loopback that injects 503s and dropped connections on request."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.fail_next = 0
        self.drop_next = 0
        self.lose_next = 0
        self.drop_put_number = 0  # drop the n-th PUT (a resumable-upload chunk) from now on
        self.fail_every = 0  # when set, every n-th request gets a 503
        self.drop_every = 0  # when set, every n-th request is dropped
        self._puts = 0
        self.requests = 0
        self.served = 0  # response body bytes sent back: shows what a ranged read fetched
        self.injected: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests += 1
                    action = None
                    n = proxy.requests
                    if proxy.drop_every and n % proxy.drop_every == 0:
                        proxy.drop_next += 1
                    elif proxy.fail_every and n % proxy.fail_every == 0:
                        proxy.fail_next += 1
                    if self.command == "PUT" and proxy.drop_put_number:
                        proxy._puts += 1
                    if proxy.drop_put_number and proxy._puts == proxy.drop_put_number:
                        proxy.drop_put_number = proxy._puts = 0
                        action = "drop"
                    elif proxy.drop_next > 0:
                        proxy.drop_next -= 1
                        action = "drop"
                    elif proxy.lose_next > 0 and self.command != "GET":
                        proxy.lose_next -= 1
                        action = "lose"
                    elif proxy.fail_next > 0:
                        proxy.fail_next -= 1
                        action = "503"
                    if action:
                        proxy.injected.append(f"{action} {self.command} {self.path[:80]}")
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action == "503":
                    msg = b'{"error": {"code": 503, "message": "injected by FaultProxy"}}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if action == "lose":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # Counted before the write: the client may return (and the test read the
                # counter) as soon as the last byte arrives.
                with proxy._lock:
                    proxy.served += len(data)
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def gcs_with_proxy(log_dir: Path) -> Iterator[tuple[str, FaultProxy]]:
    """fake-gcs-server behind a FaultProxy; yields (proxy endpoint, proxy). Every request,
    resumable-upload chunks included, goes through the proxy."""
    server_port, proxy_port = free_port(), free_port()
    proxy = FaultProxy(f"127.0.0.1:{server_port}", port=proxy_port)
    try:
        with fake_gcs_server(log_dir, port=server_port, external_url=proxy.endpoint):
            yield proxy.endpoint, proxy
    finally:
        proxy.close()
