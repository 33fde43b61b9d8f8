"""The images the real test node runs, built here without a registry or a container engine
and cached by the hash of what goes into them (like the Go tools in hack/tools/build.sh).

- ``pause``: the pod sandbox, hack/tools/pause built as a static Go program, one file.
- ``operator`` and ``job-cpu``: the Dockerfile's targets of the same names, assembled as three
  layers: a Debian bookworm base (debootstrap ``minbase`` with Debian's python3, the arcx user
  65532, this machine's local CAs, as hack/docker-local-base.sh makes it), a layer with the
  package's dependencies in /opt/venv (keyed by constraints.txt and pyproject.toml), and a
  layer with the package itself (keyed by its sources), so a source change rebuilds seconds,
  not minutes. The image config (ENV, USER, WORKDIR, ENTRYPOINT, CMD) is read from the
  Dockerfile's final stage of that target, so the two paths cannot drift apart there.
  Why not ``docker build``: no engine runs in CI here, and Debian's docker.io needs a daemon
  with the vfs driver, minutes per build (docs/operator.md); the Dockerfile stays what kind
  and users build.

``python -m hack.cluster.images [NAME ...]`` builds (or finds) them and prints
``NAME=reference archive`` lines. Needs root (debootstrap, chroot, overlay mounts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hack.cluster.oci import ImageConfig, Layer, layer_from_dir, layer_from_files, write_archive
from hack.cluster.tools import REPO

CACHE = Path(os.environ.get("ARCX_TOOLS_CACHE", Path.home() / ".cache" / "arcx-tools")) / "images"
REGISTRY = "arcx.local"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
SUITE = "bookworm"
UID = 65532
# What pip and the chroot leave behind that no image needs.
_SCRATCH = ("tmp", "root/.cache", "var/cache", "var/log", "dev", "proc", "sys", "run")
# The repository's packages each image installs (the Dockerfile's pip install lines).
_PACKAGES = {
    "operator": (REPO / "store", REPO / "operator"),
    "job-cpu": (REPO / "store", REPO / "job_image"),
}


@dataclass(frozen=True)
class Image:
    name: str  # the short name: pause, operator, job-cpu
    ref: str  # what pods name: arcx.local/<name>:<key>
    archive: Path


class ImageBuildError(RuntimeError):
    pass


def _hash(*parts: bytes | str | Path) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, Path):
            for f in sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]:
                if "__pycache__" in f.parts:
                    continue
                h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
        else:
            h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\1")
    return h.hexdigest()[:16]


def _run(argv: list[str], **kw: object) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise ImageBuildError(f"{shlex.join(argv)} exited {proc.returncode}:\n{tail}")


def _mirror() -> str:
    """The Debian mirror apt already uses here (not -security), else deb.debian.org."""
    texts = []
    for p in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if p.is_file():
            texts.append(p.read_text(errors="replace"))
    for word in " ".join(texts).split():
        w = word.rstrip("/")
        if w.startswith("http") and w.endswith("/debian"):
            return w
    return "http://deb.debian.org/debian"


def _local_cas() -> list[Path]:
    return sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))


# -- Dockerfile: the image config of a target ---------------------------------------------


def dockerfile_config(target: str, dockerfile: Path = REPO / "Dockerfile") -> ImageConfig:
    """ENV, USER, WORKDIR, ENTRYPOINT and CMD of stage ``target`` and the stages it is built
    FROM (exec-form JSON arrays only, ``ENV k=v`` pairs, no variable expansion but $PATH)."""
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    lines = dockerfile.read_text().replace("\\\n", " ").splitlines()
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            current = []
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            stages[name] = (parts[0], current)
        elif word in {"ENV", "USER", "WORKDIR", "ENTRYPOINT", "CMD"}:
            current.append((word, rest.strip()))
    if target not in stages:
        raise ImageBuildError(f"{dockerfile}: no stage named {target}")
    chain: list[list[tuple[str, str]]] = []
    stage: str | None = target
    while stage in stages:
        parent, instrs = stages[stage]
        chain.insert(0, instrs)
        stage = parent
    # What the python:3.11-slim base sets (hack/docker-local-base.sh sets the same).
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    }
    cfg: dict[str, object] = {}
    for instrs in chain:
        for word, rest in instrs:
            if word == "ENV":
                for pair in shlex.split(rest):
                    k, _, v = pair.partition("=")
                    env[k] = v.replace("$PATH", env.get("PATH", ""))
            elif word in {"ENTRYPOINT", "CMD"}:
                cfg[word] = json.loads(rest)
                if word == "ENTRYPOINT":
                    cfg.pop("CMD", None)
            else:
                cfg[word] = rest
    return ImageConfig(
        env=env,
        user=str(cfg.get("USER", "")),
        workdir=str(cfg.get("WORKDIR", "")),
        entrypoint=list(cfg.get("ENTRYPOINT", [])),  # type: ignore[call-overload]
        cmd=list(cfg.get("CMD", [])),  # type: ignore[call-overload]
    )


# -- pause -----------------------------------------------------------------------------------


def build_pause(cache: Path = CACHE) -> Image:
    src = REPO / "hack" / "tools" / "pause"
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout
    key = _hash(src, go)
    out = cache / f"pause-{key}"
    image = Image("pause", f"{REGISTRY}/pause:{key}", out / "image.tar")
    if image.archive.exists():
        return image
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        binary = Path(tmp) / "pause"
        env = {**os.environ, "CGO_ENABLED": "0"}
        _run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), "."], cwd=src, env=env
        )
        layer = layer_from_files({"pause": (binary.read_bytes(), 0o755)}, Path(tmp) / "layer.tar")
        write_archive(
            image.ref, [layer], ImageConfig(entrypoint=["/pause"], user="65535"), image.archive
        )
    return image


# -- the Debian base ------------------------------------------------------------------------


def _base(cache: Path) -> tuple[Path, Layer]:
    """The base root filesystem (a directory, the lower layer of the builds) and its layer."""
    cas = _local_cas()
    key = _hash(SUITE, " ".join(BASE_PACKAGES), str(UID), *[c.read_bytes() for c in cas])
    out = cache / f"base-{key}"
    root, layer_path = out / "root", out / "layer.tar"
    digest_file = out / "layer.sha256"
    if digest_file.exists():
        digest = digest_file.read_text().strip()
        return root, Layer(layer_path, digest, layer_path.stat().st_size)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    root.mkdir(mode=0o755)
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(root),
            _mirror(),
        ]
    )
    for ca in cas:
        shutil.copy(ca, root / "usr/local/share/ca-certificates" / ca.name)
    script = (
        f"set -e; update-ca-certificates >/dev/null; apt-get clean; "
        f"groupadd --system --gid {UID} arcx; "
        f"useradd --system --uid {UID} --gid {UID} --home-dir /home/arcx --create-home arcx"
    )
    _run(["chroot", str(root), "/bin/sh", "-c", script])
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "usr/share/doc/*",
        "usr/share/man/*",
    ):
        for p in root.glob(pattern):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    layer = layer_from_dir(root, layer_path, exclude=_SCRATCH)
    digest_file.write_text(layer.digest)
    return root, layer


# -- Python package images -----------------------------------------------------------------


def _in_overlay(lowers: list[Path], upper: Path, script: str) -> None:
    """Run ``script`` chrooted into an overlay of ``lowers`` (first is topmost) with ``upper``
    collecting every change, in a private mount namespace (nothing stays mounted). The host's
    pip cache and resolv.conf are bind-mounted in, so pip reaches PyPI as the host does."""
    work = upper.parent / "work"
    merged = upper.parent / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    pip_cache = Path.home() / ".cache" / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    lower = ":".join(str(p) for p in lowers)
    m = shlex.quote(str(merged))
    outer = f"""set -e
mount -t overlay overlay -o lowerdir={shlex.quote(lower)},upperdir={shlex.quote(str(upper))},workdir={shlex.quote(str(work))} {m}
mount -t proc proc {m}/proc
mount --rbind /dev {m}/dev
mkdir -p {m}/tmp/pip-cache
mount --bind {shlex.quote(str(pip_cache))} {m}/tmp/pip-cache
cp /etc/resolv.conf {m}/tmp/resolv.conf && mount --bind {m}/tmp/resolv.conf {m}/etc/resolv.conf
exec chroot {m} /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  PIP_CACHE_DIR=/tmp/pip-cache PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 /bin/sh -c {shlex.quote(script)}
"""
    _run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", outer])
    shutil.rmtree(work, ignore_errors=True)
    merged.rmdir()


def _dependencies(packages: tuple[Path, ...]) -> list[str]:
    """What ``packages`` require from PyPI: their dependencies, with a requirement on one of
    them (``arcx-store[gcs]``) replaced by what it and those extras require."""
    projects = {}
    for p in packages:
        project = tomllib.loads((p / "pyproject.toml").read_text())["project"]
        projects[project["name"]] = project
    out: list[str] = []
    for project in projects.values():
        for req in project.get("dependencies", []):
            name = re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]
            if name not in projects:
                out.append(req)
                continue
            local = projects[name]
            out += local.get("dependencies", [])
            extras = re.search(r"\[(.*?)\]", req)
            for extra in extras.group(1).split(",") if extras else []:
                out += local.get("optional-dependencies", {}).get(extra.strip(), [])
    return sorted(set(out))


def build_python_image(name: str, cache: Path = CACHE) -> Image:
    """``operator`` or ``job-cpu``: base, dependencies and packages layers."""
    packages = _PACKAGES[name]
    base_root, base_layer = _base(cache)
    constraints = REPO / "constraints.txt"
    deps_key = _hash(base_layer.digest, constraints, *[p / "pyproject.toml" for p in packages])
    deps_dir = cache / f"{name}-deps-{deps_key}"
    if not (deps_dir / "layer.sha256").exists():
        shutil.rmtree(deps_dir, ignore_errors=True)
        reqs = " ".join(shlex.quote(r) for r in _dependencies(packages))
        (deps_dir).mkdir(parents=True)
        shutil.copy(constraints, deps_dir / "constraints.txt")
        _in_overlay(
            [base_root],
            deps_dir / "upper",
            f"set -e; python -m venv /opt/venv; mkdir -p /tmp/src; "
            f"cat > /tmp/src/constraints.txt <<'EOF'\n{constraints.read_text()}\nEOF\n"
            f"/opt/venv/bin/pip install -q --constraint /tmp/src/constraints.txt {reqs}",
        )
        layer = layer_from_dir(deps_dir / "upper", deps_dir / "layer.tar", exclude=_SCRATCH)
        (deps_dir / "layer.sha256").write_text(layer.digest)
    deps_layer = Layer(
        deps_dir / "layer.tar",
        (deps_dir / "layer.sha256").read_text().strip(),
        (deps_dir / "layer.tar").stat().st_size,
    )
    config = dockerfile_config(name)
    app_key = _hash(
        deps_layer.digest,
        *[p / "pyproject.toml" for p in packages],
        *[p / "src" for p in packages],
        json.dumps(config.to_json()),
    )
    out = cache / f"{name}-{app_key}"
    image = Image(name, f"{REGISTRY}/{name}:{app_key}", out / "image.tar")
    if image.archive.exists():
        return image
    shutil.rmtree(out, ignore_errors=True)
    upper = out / "upper"
    # The packages' sources are copied into the upper layer's /tmp (excluded from the layer)
    # and installed from there without dependencies: those are the layer below.
    for p in packages:
        shutil.copytree(
            p,
            upper / "tmp" / "src" / p.name,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
        )
    srcs = " ".join(f"/tmp/src/{p.name}" for p in packages)
    _in_overlay(
        [deps_dir / "upper", base_root],
        upper,
        f"set -e; /opt/venv/bin/pip install -q --no-deps {srcs}",
    )
    app_layer = layer_from_dir(upper, out / "layer.tar", exclude=_SCRATCH)
    write_archive(image.ref, [base_layer, deps_layer, app_layer], config, image.archive)
    shutil.rmtree(upper)
    (out / "layer.tar").unlink()
    return image


BUILDERS = {
    "pause": build_pause,
    "operator": lambda: build_python_image("operator"),
    "job-cpu": lambda: build_python_image("job-cpu"),
}


def build(name: str) -> Image:
    return BUILDERS[name]()  # type: ignore[no-untyped-call]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hack.cluster.images", description=__doc__.splitlines()[0]
    )
    ap.add_argument("names", nargs="*", choices=[*BUILDERS, []], help="default: all")
    args = ap.parse_args(argv)
    for n in args.names or list(BUILDERS):
        try:
            image = build(n)
        except ImageBuildError as e:
            print(f"images: building {n} failed: {e}", file=sys.stderr)
            return 1
        print(f"{n}={image.ref} {image.archive}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
