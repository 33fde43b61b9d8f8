"""`arcx verify <store>`: every planned unit committed, every file's size and sha256 match.

The cheap checks (marker parses, sizes, the backend's crc32c) are the committed-unit rule of
``arcx_store.units``; verify adds the sha256 of every byte and reports every file it checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from arcx_store import layout
from arcx_store.backends.base import Storage
from arcx_store.errors import NotFound, StorageError, StoreFormatError
from arcx_store.manifest import read_manifest
from arcx_store.markers import FileInfo, marker_files, parse_marker, stray_keys
from arcx_store.units import file_problem, list_store

from arcx.runner.plan import UnitPlan


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


def verify_store(
    storage: Storage,
    *,
    check_hashes: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """``progress(units_checked, units_total)`` is called before each unit is checked."""
    report = VerifyReport()
    try:
        manifest = read_manifest(storage)
    except NotFound:
        report.problems.append(f"{storage.uri}/{layout.MANIFEST} is missing: not an arcx store")
        return report
    except StoreFormatError as err:
        report.problems.append(str(err))
        return report
    try:
        plan = UnitPlan.from_json(manifest["plan"])
    except (KeyError, TypeError, ValueError) as err:
        report.problems.append(f"{storage.uri}/{layout.MANIFEST}: unreadable unit plan ({err})")
        return report
    report.units_total = len(plan.units)
    stats = list_store(storage)
    for i, u in enumerate(unit.index for unit in plan.units):
        if progress is not None:
            progress(i, len(plan.units))
        key = layout.marker_key(u)
        if key not in stats:
            report.problems.append(f"unit {u}: not committed ({key} missing)")
            continue
        try:
            marker = parse_marker(storage.read_bytes(key), f"{storage.uri}/{key}", u)
        except (StorageError, StoreFormatError) as err:
            report.problems.append(f"unit {u}: {err}")
            continue
        bad = False
        for f in marker_files(marker):
            problem = _check_file(storage, f, stats, check_hashes)
            report.files_checked += 1
            if problem:
                report.problems.append(f"unit {u}: {problem}")
                bad = True
        if not bad:
            report.units_committed += 1
        for k in stray_keys(u, marker, list(stats)):
            report.warnings.append(f"unit {u}: stray file {k} (not in the marker; ignored)")
    return report


def _check_file(storage: Storage, f: FileInfo, stats: dict, check_hashes: bool) -> str | None:
    stat = stats.get(f.key)
    if stat is None:
        return f"{f.key}: missing"
    cheap = file_problem(f, stat)
    if cheap is not None:
        return f"{f.key}: size {stat.size}, marker says {f.size}" if stat.size != f.size else cheap
    if not check_hashes:
        return None
    try:
        data = storage.read_bytes(f.key)
    except NotFound:
        return f"{f.key}: missing"
    except StorageError as err:
        return f"{f.key}: {err}"
    if len(data) != f.size:
        return f"{f.key}: size {len(data)}, marker says {f.size}"
    digest = hashlib.sha256(data).hexdigest()
    if digest != f.sha256:
        return f"{f.key}: sha256 {digest[:16]}..., marker says {f.sha256[:16]}... (corrupted)"
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
