"""Filesystem backend: atomic rename for writes, link(2) for create-only writes.

The root is resolved once (a symlinked output or dataset folder is fine); a key is refused
only when it would leave that root. Files get the mode any tool would give them (0666 less
the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from pathlib import Path

from arcx_store import layout
from arcx_store.backends.base import ObjectStat, check_range
from arcx_store.errors import NotFound, StorageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        given = Path(root).expanduser().absolute()
        self.uri = str(given)
        # Resolved once: keys are checked against the real folder, so a symlinked root works.
        self.root = given.resolve()
        self._mode = 0o666 & ~_umask()

    def _path(self, key: str) -> Path:
        if not key:
            return self.root
        why = layout.check_key(key.rstrip("/"))
        if why is not None:
            raise StorageError(f"key {key!r} escapes the store root {self.uri}: {why}")
        p = (self.root / key.rstrip("/")).resolve()
        if p != self.root and self.root not in p.parents:
            raise StorageError(f"key {key!r} escapes the store root {self.uri}")
        return p

    def path_of(self, key: str) -> Path:
        """The checked local path of ``key`` (for tools that need a file name)."""
        return self._path(key)

    def _write_temp(self, path: Path, data: bytes) -> Path:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=layout.TEMP_SUFFIX, dir=path.parent
            )
        except OSError as err:
            raise StorageError(f"cannot write under {path.parent}: {err.strerror}") from None
        try:
            os.fchmod(fd, self._mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err.strerror}") from None

    def read_mapped(self, key: str) -> bytes | mmap.mmap:
        path = self._path(key)
        try:
            with path.open("rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return b""
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err.strerror}") from None

    def read_range(self, key: str, start: int, length: int) -> bytes:
        check_range(start, length)
        path = self._path(key)
        try:
            with path.open("rb") as f:
                chunks: list[bytes] = []
                got = 0
                while got < length:  # pread may return less than asked (2 GiB cap on Linux)
                    chunk = os.pread(f.fileno(), length - got, start + got)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
                return b"".join(chunks)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err.strerror}") from None

    def write_bytes(self, key: str, data: bytes) -> ObjectStat:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        os.replace(tmp, path)
        return ObjectStat(len(data))

    def create_only(self, key: str, data: bytes) -> bool:
        # Write the full content under a temporary name, then link(2) it into place: the
        # link fails if the name exists, so readers never see a partial marker and exactly
        # one writer wins.
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def size(self, key: str) -> int:
        return self.stat(key).size

    def stat(self, key: str) -> ObjectStat:
        path = self._path(key)
        try:
            return ObjectStat(path.stat().st_size)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.list_stats(prefix))

    def list_stats(self, prefix: str = "") -> dict[str, ObjectStat]:
        # Temporary files are listed too: a killed writer's leftovers must be visible to the
        # stray clean-up (a finished store holds exactly what its markers name).
        base = self._path(prefix)
        if base.is_file():
            return {prefix.strip("/"): ObjectStat(base.stat().st_size)}
        if not base.is_dir():
            return {}
        out: dict[str, ObjectStat] = {}
        for p in base.rglob("*"):
            try:
                if p.is_file():
                    out[p.relative_to(self.root).as_posix()] = ObjectStat(p.stat().st_size)
            except FileNotFoundError:  # removed while listing (a temp file renamed)
                continue
        return out

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check_reachable(self) -> None:
        """A local root is always reachable; its folder is created on the first write."""
