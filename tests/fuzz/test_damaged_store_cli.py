"""`arcx verify`, `arcx inspect`, `arcx sae-batches` and `arcx export-saelens` on a store whose
manifest or markers are hostile: an error that names the file, a non-zero exit (inspect
reports a damaged unit and carries on), no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from arcx_store.layout import MANIFEST, MARKER_NAME, marker_key

from arcx.cli import main
from tests.sae.stores import build_store

MARKER = marker_key(0)


def _manifest(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())


DAMAGE = {
    "manifest not UTF-8": ("manifest.json", lambda s: b'{"formatVersion": 2, "x": "\xff"}'),
    "manifest a list": ("manifest.json", lambda s: b"[1, 2, 3]"),
    "manifest without plan": (
        "manifest.json",
        lambda s: json.dumps({k: v for k, v in _manifest(s).items() if k != "plan"}).encode(),
    ),
    "manifest nested too deep": ("manifest.json", lambda s: b"[" * 100_000),
    "marker a list": (MARKER, lambda s: b"[]"),
    "marker without counts": (
        MARKER,
        lambda s: json.dumps(
            {k: v for k, v in json.loads((s / MARKER).read_text()).items() if k != "tokens"}
        ).encode(),
    ),
    "marker naming a file outside": (
        MARKER,
        lambda s: json.dumps(
            {
                **json.loads((s / MARKER).read_text()),
                "parts": [{"key": "../../etc/passwd", "size": 1, "sha256": "0" * 64}],
            }
        ).encode(),
    ),
}

COMMANDS = {
    "verify": lambda store, out: ["verify", str(store)],
    "inspect": lambda store, out: ["inspect", "--json", str(store)],
    "sae-batches": lambda store, out: ["sae-batches", str(store), "--layer", "1", "--n", "1",
                                       "--batch-size", "8", "--keep-special-tokens"],
    "export-saelens": lambda store, out: ["export-saelens", str(store), "--layer", "1",
                                          "--out", str(out), "--keep-special-tokens"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_store_is_reported_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, damage: str
) -> None:
    built = build_store(tmp_path, model_source=str(tmp_path / "no-model"), units=2, hosts=1)
    key, make = DAMAGE[damage]
    (built.root / key).write_bytes(make(built.root))
    code = main(COMMANDS[command](built.root, tmp_path / "export"))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    if not (command == "inspect" and key == MARKER):  # inspect lists a damaged unit and goes on
        assert code != 0, captured.out[-2000:]
    named = MANIFEST if key == MANIFEST else MARKER_NAME
    assert named in captured.err + captured.out or "unit 0" in captured.err + captured.out
