"""`arcx verify <store>`: every planned unit committed, every file's size and sha256 match."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from arcx.runner import layout
from arcx.runner.commit import read_marker
from arcx.runner.manifest import StoreMismatch, read_manifest
from arcx.runner.plan import UnitPlan
from arcx.storage import NotFound, Storage, StorageError


@dataclass
class VerifyReport:
    units_total: int = 0
    units_committed: int = 0
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.units_committed == self.units_total


def verify_store(storage: Storage, *, check_hashes: bool = True) -> VerifyReport:
    report = VerifyReport()
    try:
        manifest = read_manifest(storage)
    except NotFound:
        report.problems.append(f"{storage.uri}/{layout.MANIFEST} is missing: not an arcx store")
        return report
    except StoreMismatch as err:
        report.problems.append(str(err))
        return report
    plan = UnitPlan.from_json(manifest["plan"])
    report.units_total = len(plan.units)
    for unit in plan.units:
        u = unit.index
        try:
            marker = read_marker(storage, u)
        except StorageError as err:
            report.problems.append(f"unit {u}: {err}")
            continue
        if marker is None:
            report.problems.append(f"unit {u}: not committed ({layout.marker_key(u)} missing)")
            continue
        files = list(marker["parts"])
        if marker.get("predictions"):
            files.append(marker["predictions"])
        bad = False
        for f in files:
            problem = _check_file(storage, f["key"], int(f["size"]), f["sha256"], check_hashes)
            report.files_checked += 1
            if problem:
                report.problems.append(f"unit {u}: {problem}")
                bad = True
        if not bad:
            report.units_committed += 1
        named = {f["key"] for f in files} | {layout.marker_key(u)}
        for k in storage.list(layout.unit_dir(u)):
            if k not in named:
                report.warnings.append(f"unit {u}: stray file {k} (not in the marker; ignored)")
    return report


def _check_file(
    storage: Storage, key: str, size: int, sha256: str, check_hashes: bool
) -> str | None:
    try:
        if not check_hashes:
            actual = storage.size(key)
            return None if actual == size else f"{key}: size {actual}, marker says {size}"
        data = storage.read_bytes(key)
    except NotFound:
        return f"{key}: missing"
    except StorageError as err:
        return f"{key}: {err}"
    if len(data) != size:
        return f"{key}: size {len(data)}, marker says {size}"
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        return f"{key}: sha256 {digest[:16]}..., marker says {sha256[:16]}... (corrupted)"
    return None


def format_report(uri: str, report: VerifyReport) -> str:
    lines = [
        f"store {uri}: {report.units_committed}/{report.units_total} units committed and intact, "
        f"{report.files_checked} files checked"
    ]
    lines += [f"  PROBLEM {p}" for p in report.problems]
    lines += [f"  warning {w}" for w in report.warnings]
    lines.append("OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
    return "\n".join(lines)
