"""manifest.json: what a store holds and how it was made; written once, checked on resume.

The manifest is built by the runner (it knows the job config and the model); reading,
encoding, comparing and creating it happen here.
"""

from __future__ import annotations

import json
from typing import Any

from arcx_store import layout
from arcx_store.backends.base import Storage
from arcx_store.errors import NotFound, StoreFormatError, StoreMismatch
from arcx_store.jsonfile import encode, parse_object

# Fields of the job config that do not change the bytes written: left out of the config
# hash (a job may move buckets or be re-run with another slice count) and of the config
# the manifest records. A pydantic ``exclude`` spec over the config's field names. Where
# compiled programs are cached changes only how fast a pod restarts.
CONFIG_HASH_EXCLUDE: dict[str, Any] = {
    "output": {"uri"},
    "parallelism": True,
    "engine": {"compilation_cache"},
}

# What a resume compares, and how a refusal names it.
_COMPARED = (
    (("configHash",), "the job configuration (config hash)"),
    (("dataset", "fingerprint"), "the dataset (fingerprint)"),
    (("plan",), "the unit plan"),
    (("model", "dModel"), "the model width"),
)


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    return encode(manifest)


def check_format(version: Any, what: str) -> None:
    """Refuse a format this arcx cannot read, telling which side to upgrade."""
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoreFormatError(f"{what} has no integer formatVersion (found {version!r})")
    if version > layout.FORMAT_VERSION:
        raise StoreFormatError(
            f"{what} has format version {version}, newer than this arcx reads "
            f"(up to {layout.FORMAT_VERSION}): upgrade arcx to read this store"
        )
    if version not in layout.READABLE_FORMATS:
        raise StoreFormatError(
            f"{what} has format version {version}; this arcx reads versions "
            f"{', '.join(map(str, layout.READABLE_FORMATS))}"
        )


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """A manifest's bytes, checked: a JSON object of a readable format with a unit plan."""
    what = f"{where}/{layout.MANIFEST}"
    manifest = parse_object(data, what)
    check_format(manifest.get("formatVersion"), what)
    plan = manifest.get("plan")
    if not isinstance(plan, dict) or not isinstance(plan.get("units"), list):
        raise StoreFormatError(f"{what} has no unit plan ('plan.units' missing or not a list)")
    return manifest


def read_manifest(storage: Storage) -> dict[str, Any]:
    """The store's manifest; NotFound when there is none, StoreFormatError when malformed."""
    return parse_manifest(storage.read_bytes(layout.MANIFEST), storage.uri)


def units_total(manifest: dict[str, Any]) -> int:
    return len(manifest["plan"]["units"])


def _field(doc: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        doc = doc.get(k) if isinstance(doc, dict) else None
    return doc


def differences(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Each compared fact that differs, as ``what differs (store has X, this job has Y)``;
    a config hash that differs also names the config fields behind it."""
    out = []
    for path, what in _COMPARED:
        a, b = _field(existing, path), _field(wanted, path)
        if a != b:
            text = f"{what} differs (store has {_short(a)}, this job has {_short(b)})"
            if path == ("configHash",):
                fields = _config_fields(existing.get("config"), wanted.get("config"))
                if fields:
                    text += f"; config fields that differ: {', '.join(fields)}"
            out.append(text)
    return out


def _config_fields(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the config fields that differ (the recorded config of each side)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [prefix] if a != b and prefix else []
    out: list[str] = []
    for k in sorted(set(a) | set(b)):
        out += _config_fields(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
    return out


def compare_manifests(existing: dict[str, Any], wanted: dict[str, Any], where: str) -> None:
    """Raise StoreMismatch naming what differs; identical jobs pass."""
    diff = differences(existing, wanted)
    if diff:
        raise StoreMismatch(
            f"the store {where} was written by another job: {'; '.join(diff)}. "
            "Point output.uri at a new location, or run the job that made this store."
        )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def ensure_manifest(storage: Storage, manifest: dict[str, Any]) -> bool:
    """Create the manifest, or check that the one there is this job's; True if created."""
    if storage.create_only(layout.MANIFEST, encode_manifest(manifest)):
        return True
    try:
        existing = read_manifest(storage)
    except NotFound:  # deleted between the two calls: try once more
        return storage.create_only(layout.MANIFEST, encode_manifest(manifest))
    compare_manifests(existing, manifest, storage.uri)
    return False
