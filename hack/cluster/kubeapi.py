"""A small JSON client for the Kubernetes API, driven by a kubeconfig (client certificate,
bearer token, or either with a CA). The node agent and the e2e tests use it so they work
with raw objects (dicts), the same against the local control plane and a kind cluster."""

from __future__ import annotations

import base64
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import requests
import yaml

Obj = dict[str, Any]

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str, what: str) -> None:
        self.status = status
        self.body = body
        try:
            self.message = str(json.loads(body).get("message", body))
        except ValueError:
            self.message = body
        super().__init__(f"{what}: HTTP {status}: {self.message}")


def _materialise(data_b64: str | None, path: str | None, tmp: Path, name: str) -> str | None:
    if data_b64:
        p = tmp / name
        p.write_bytes(base64.b64decode(data_b64))
        p.chmod(0o600)
        return str(p)
    return path


class Kube:
    """``Kube(kubeconfig)``; paths are API paths such as ``/api/v1/namespaces/x/pods``."""

    def __init__(self, kubeconfig: str | Path, user_agent: str = "arcx-tests") -> None:
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next((u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {})
        self.namespace = ctx.get("namespace", "default")
        self.server = cluster["server"].rstrip("/")
        self._tmp = tempfile.TemporaryDirectory(prefix="arcx-kube-")
        tmp = Path(self._tmp.name)
        s = requests.Session()
        # Not the environment's CA bundle or proxies: they would override the kubeconfig's CA.
        s.trust_env = False
        s.headers["User-Agent"] = user_agent
        if cluster.get("insecure-skip-tls-verify"):
            s.verify = False
        else:
            ca = _materialise(
                cluster.get("certificate-authority-data"),
                cluster.get("certificate-authority"),
                tmp,
                "ca.crt",
            )
            s.verify = ca if ca else True
        cert = _materialise(
            user.get("client-certificate-data"), user.get("client-certificate"), tmp, "c.crt"
        )
        key = _materialise(user.get("client-key-data"), user.get("client-key"), tmp, "c.key")
        if cert and key:
            s.cert = (cert, key)
        if user.get("token"):
            s.headers["Authorization"] = f"Bearer {user['token']}"
        self.session = s

    # -- verbs -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Obj:
        url = self.server + path
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else json.dumps(body)
        for attempt in range(20):
            r = self.session.request(
                method, url, data=data, headers={"Content-Type": content_type}, timeout=timeout
            )
            # 429: throttled, or a custom resource's storage still initialising; try again.
            if r.status_code != 429 or attempt == 19:
                break
            time.sleep(min(float(r.headers.get("Retry-After", "1") or 1), 5.0))
        if r.status_code >= 300:
            raise ApiError(r.status_code, r.text, f"{method} {path}")
        return r.json() if r.content else {}

    def get(self, path: str, **params: Any) -> Obj:
        return self.request("GET", path, params=params or None)

    def get_or_none(self, path: str) -> Obj | None:
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def create(self, path: str, body: Obj, **params: Any) -> Obj:
        return self.request("POST", path, body, params=params or None)

    def patch(self, path: str, body: Any, content_type: str = STRATEGIC) -> Obj:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str, body: Obj | None = None, *, missing_ok: bool = True) -> Obj:
        try:
            return self.request("DELETE", path, body)
        except ApiError as e:
            if missing_ok and e.status == 404:
                return {}
            raise

    def watch(
        self,
        path: str,
        resource_version: str | None = None,
        timeout_seconds: int = 240,
        **params: Any,
    ) -> Iterator[Obj]:
        """Yield watch events (``{"type": ..., "object": ...}``) until the server ends the watch."""
        q: dict[str, Any] = {"watch": "1", "timeoutSeconds": timeout_seconds, **params}
        if resource_version:
            q["resourceVersion"] = resource_version
            q["allowWatchBookmarks"] = "true"
        url = f"{self.server}{path}?{urlencode(q)}"
        with self.session.get(url, stream=True, timeout=(10, timeout_seconds + 30)) as r:
            if r.status_code >= 300:
                raise ApiError(r.status_code, r.text, f"WATCH {path}")
            for line in r.iter_lines():
                if line:
                    yield json.loads(line)


def pod_path(namespace: str, name: str = "", sub: str = "") -> str:
    p = f"/api/v1/namespaces/{quote(namespace)}/pods"
    if name:
        p += f"/{quote(name)}"
    if sub:
        p += f"/{sub}"
    return p
