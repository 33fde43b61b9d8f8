"""Where a model lives: a local directory, ``gs://bucket/prefix`` or ``hf://org/name[@rev]``.

Remote sources are copied into a local directory first (only the files a Qwen2 checkpoint
and its tokenizer need); the tensors are then memory-mapped from there. ``hf://`` honours
``HF_HUB_OFFLINE=1`` (a pre-filled cache, no network) and fails with a clear message when
the hub cannot be reached.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from arcx.model.errors import ModelLoadError

# The files of a checkpoint and its tokenizer; nothing else is fetched.
MODEL_FILE_PATTERNS = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
)


def cache_root() -> Path:
    return Path(os.environ.get("ARCX_MODEL_CACHE", Path.home() / ".cache" / "arcx" / "models"))


def resolve_model_dir(source: str) -> Path:
    """A local directory holding the model named by ``source``."""
    if source.startswith("hf://"):
        return _from_hub(source)
    if source.startswith("gs://"):
        return _from_gcs(source)
    path = Path(source.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise ModelLoadError(
            f"model source {source!r}: directory not found; give a local model directory, "
            "gs://bucket/prefix or hf://org/name[@revision]"
        )
    return path


def parse_hf(source: str) -> tuple[str, str | None]:
    """``hf://org/name@rev`` -> ("org/name", "rev"); the name must be a Hub repository id."""
    from arcx.hub_ids import split_hf_model

    try:
        return split_hf_model(source)
    except ValueError as err:
        raise ModelLoadError(str(err)) from None


def _from_hub(source: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo, rev = parse_hf(source)
    try:
        return Path(
            snapshot_download(repo_id=repo, revision=rev, allow_patterns=list(MODEL_FILE_PATTERNS))
        )
    except LocalEntryNotFoundError as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        why = (
            "HF_HUB_OFFLINE is set and the model is not in the local Hugging Face cache"
            if offline
            else "the Hugging Face Hub is unreachable and the model is not in the local cache"
        )
        raise ModelLoadError(
            f"model source {source!r}: {why} ({err.__class__.__name__}). Pre-fill the cache "
            "(HF_HOME / HF_HUB_CACHE), copy the model to gs:// or a local directory, or allow "
            "network access."
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise ModelLoadError(
            f"model source {source!r}: could not fetch from the Hub: {err}"
        ) from None


# GCS bucket names: 3..63 characters (222 with dots) of lowercase letters, digits, - _ .
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
# Under the cache root, apart from the model directories (which hold the model's files only):
# what each cached file was downloaded from (object generation, size, checksums).
CACHE_RECORDS = "records"


def gcs_cache_dir(root: Path, bucket: str, prefix: str) -> Path:
    """Where ``gs://bucket/prefix`` is cached under ``root``; a name that would leave it is refused.

    The bucket and every prefix segment become directory names, so none may be empty, ``.``
    or ``..`` (``gs://b/../../x`` would otherwise write outside the cache).
    """
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ModelLoadError(f"gs://{bucket}/{prefix}: {bucket!r} is not a GCS bucket name")
    parts = prefix.split("/") if prefix else []
    bad = [p for p in parts if p in ("", ".", "..") or "\\" in p or "\0" in p]
    if bad:
        raise ModelLoadError(
            f"gs://{bucket}/{prefix}: the prefix has segment {bad[0]!r}; it would leave the "
            "model cache"
        )
    return root.joinpath("gs", bucket, *parts)


def gcs_records_dir(root: Path, bucket: str, prefix: str) -> Path:
    """Where the download records of ``gcs_cache_dir(root, bucket, prefix)`` are kept."""
    model_dir = gcs_cache_dir(root, bucket, prefix)
    return root / CACHE_RECORDS / model_dir.relative_to(root)


def _cache_record(blob: Any) -> dict[str, Any]:
    """What identifies the object's bytes: its generation changes on every overwrite."""
    return {
        "generation": str(blob.generation),
        "size": int(blob.size),
        "crc32c": blob.crc32c,
        "md5": blob.md5_hash,
    }


def _cached(target: Path, record_path: Path, record: dict[str, Any]) -> bool:
    try:
        kept = json.loads(record_path.read_bytes())
        return kept == record and target.stat().st_size == record["size"]
    except (OSError, ValueError, RecursionError):
        return False


def _write_atomically(dest: Path, name: str, fill: Any) -> Path:
    """Write ``dest/name`` through a private temporary file, so readers never see a part."""
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".partial")
    os.close(fd)
    try:
        fill(tmp)
        os.replace(tmp, dest / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest / name


def _from_gcs(source: str) -> Path:
    from arcx_store.backends.gcs import make_client, parse_gs_uri
    from arcx_store.errors import StorageError
    from google.api_core import exceptions as gexc

    try:
        bucket_name, prefix = parse_gs_uri(source)
        dest = gcs_cache_dir(cache_root(), bucket_name, prefix)
        records = gcs_records_dir(cache_root(), bucket_name, prefix)
        client = make_client()  # honours STORAGE_EMULATOR_HOST, clear error without credentials
        under = f"{prefix}/" if prefix else ""
        blobs = {
            b.name.removeprefix(under): b
            for b in client.list_blobs(bucket_name, prefix=under or None)
            if "/" not in b.name.removeprefix(under) and _wanted(b.name.removeprefix(under))
        }
        if "config.json" not in blobs:
            raise ModelLoadError(f"model source {source!r}: no config.json under that prefix")
        dest.mkdir(parents=True, exist_ok=True)
        records.mkdir(parents=True, exist_ok=True)
        for stale in dest.iterdir():  # a file the bucket no longer has must not be loaded
            if stale.is_file() and _wanted(stale.name) and stale.name not in blobs:
                stale.unlink(missing_ok=True)
                (records / f"{stale.name}.json").unlink(missing_ok=True)
        for name, blob in sorted(blobs.items()):
            record = _cache_record(blob)
            record_path = records / f"{name}.json"
            if _cached(dest / name, record_path, record):
                continue
            record_path.unlink(missing_ok=True)  # no record: never taken for current
            # download_to_filename checks the bytes against the object's checksum
            _write_atomically(dest, name, lambda tmp, blob=blob: blob.download_to_filename(tmp))
            _write_atomically(
                records, record_path.name, lambda tmp, r=record: Path(tmp).write_text(json.dumps(r))
            )
    except (StorageError, gexc.GoogleAPIError) as err:
        raise ModelLoadError(f"model source {source!r}: could not read from GCS: {err}") from None
    except OSError as err:
        raise ModelLoadError(
            f"model source {source!r}: cannot write the model cache: {err}"
        ) from None
    return dest


def _wanted(filename: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(filename, p) for p in MODEL_FILE_PATTERNS)
