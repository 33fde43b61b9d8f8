"""OCI image archives assembled without a container engine: layer tarballs from directories
and an image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) that
``ctr images import`` reads. Layers are uncompressed and reproducible (sorted names, mtime 0,
numeric owners), so equal inputs give equal digests."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
# An overlayfs upper directory marks a deleted lower file with a 0:0 character device; an
# OCI layer marks it with an empty ``.wh.<name>`` file.
_WHITEOUT_PREFIX = ".wh."


@dataclass(frozen=True)
class Layer:
    path: Path
    digest: str  # sha256 of the tar as stored (uncompressed, so also its diff id)
    size: int


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config; the fields of a Dockerfile's final stage."""

    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        cfg: dict[str, object] = {"Env": [f"{k}={v}" for k, v in self.env.items()]}
        if self.user:
            cfg["User"] = self.user
        if self.workdir:
            cfg["WorkingDir"] = self.workdir
        if self.entrypoint:
            cfg["Entrypoint"] = self.entrypoint
        if self.cmd:
            cfg["Cmd"] = self.cmd
        return cfg


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _walk(root: Path) -> Iterable[Path]:
    """Every path under ``root`` in sorted order, directories before their contents."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        if base != root:
            yield base
        for name in sorted(filenames):
            yield base / name
        # Symlinked directories are listed by os.walk in dirnames but not descended into.
        for name in dirnames:
            if (base / name).is_symlink():
                yield base / name
        dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]


def layer_from_dir(root: Path, out: Path, exclude: Iterable[str] = ()) -> Layer:
    """Tar ``root``'s contents (paths relative to it) into ``out``. ``exclude``: relative
    paths left out with everything under them. Overlay whiteouts become ``.wh.`` files."""
    skip = {e.strip("/") for e in exclude}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for p in _walk(root):
            rel = p.relative_to(root).as_posix()
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            st = p.lstat()
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                info = tarfile.TarInfo(str(Path(rel).parent / (_WHITEOUT_PREFIX + p.name)))
                info.mtime = 0
                tar.addfile(info, io.BytesIO(b""))
                continue
            info = tar.gettarinfo(str(p), arcname=rel)
            info.mtime = 0
            info.uname = info.gname = ""
            if info.isreg():
                with p.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return Layer(out, _sha256_file(out), out.stat().st_size)


def layer_from_files(files: dict[str, tuple[bytes, int]], out: Path) -> Layer:
    """A layer of regular files: ``{path: (content, mode)}``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data, mode = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return Layer(out, _sha256_file(out), out.stat().st_size)


def write_archive(name: str, layers: list[Layer], config: ImageConfig, out: Path) -> str:
    """Write an OCI image layout tar holding one image called ``name`` (a full reference such
    as ``arcx.local/pause:1``); returns the manifest digest."""
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": config.to_json(),
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{ly.digest}" for ly in layers]},
        "history": [{"created_by": "hack/cluster/oci.py"} for _ in layers],
    }
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": f"sha256:{hashlib.sha256(cfg_bytes).hexdigest()}",
            "size": len(cfg_bytes),
        },
        "layers": [
            {"mediaType": LAYER_MEDIA_TYPE, "digest": f"sha256:{ly.digest}", "size": ly.size}
            for ly in layers
        ],
    }
    man_bytes = json.dumps(manifest, sort_keys=True).encode()
    man_digest = hashlib.sha256(man_bytes).hexdigest()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": f"sha256:{man_digest}",
                "size": len(man_bytes),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:

        def add_bytes(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))

        add_bytes("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add_bytes("index.json", json.dumps(index).encode())
        add_bytes(f"blobs/sha256/{hashlib.sha256(cfg_bytes).hexdigest()}", cfg_bytes)
        add_bytes(f"blobs/sha256/{man_digest}", man_bytes)
        seen: set[str] = set()
        for ly in layers:
            if ly.digest not in seen:
                seen.add(ly.digest)
                tar.add(str(ly.path), arcname=f"blobs/sha256/{ly.digest}")
    tmp.rename(out)
    return f"sha256:{man_digest}"
