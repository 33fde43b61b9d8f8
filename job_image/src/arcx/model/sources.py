"""Where a model lives: a local directory, ``gs://bucket/prefix`` or ``hf://org/name[@rev]``.

Remote sources are copied into a local directory first (only the files a Qwen2 checkpoint
and its tokenizer need); the tensors are then memory-mapped from there. ``hf://`` honours
``HF_HUB_OFFLINE=1`` (a pre-filled cache, no network) and fails with a clear message when
the hub cannot be reached.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    """``hf://org/name@rev`` -> ("org/name", "rev")."""
    rest = source.removeprefix("hf://").strip("/")
    repo, _, rev = rest.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ModelLoadError(f"model source {source!r}: expected hf://org/name[@revision]")
    return repo, rev or None


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


def _from_gcs(source: str) -> Path:
    from google.api_core import exceptions as gexc

    from arcx.storage.base import StorageError
    from arcx.storage.gcs import _make_client, parse_gs_uri

    try:
        bucket_name, prefix = parse_gs_uri(source)
        client = _make_client()  # honours STORAGE_EMULATOR_HOST, clear error without credentials
        under = f"{prefix}/" if prefix else ""
        blobs = [
            b
            for b in client.list_blobs(bucket_name, prefix=under or None)
            if "/" not in b.name.removeprefix(under) and _wanted(b.name.removeprefix(under))
        ]
        if not any(b.name.removeprefix(under) == "config.json" for b in blobs):
            raise ModelLoadError(f"model source {source!r}: no config.json under that prefix")
        dest = cache_root() / "gs" / bucket_name / prefix
        dest.mkdir(parents=True, exist_ok=True)
        for blob in blobs:
            target = dest / blob.name.removeprefix(under)
            if target.exists() and target.stat().st_size == blob.size:
                continue
            tmp = target.with_name(target.name + ".partial")
            blob.download_to_filename(str(tmp))
            tmp.replace(target)
    except (StorageError, gexc.GoogleAPIError) as err:
        raise ModelLoadError(f"model source {source!r}: could not read from GCS: {err}") from None
    return dest


def _wanted(filename: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(filename, p) for p in MODEL_FILE_PATTERNS)
