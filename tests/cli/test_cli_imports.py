"""`arcx`'s command table: every area registers, and one that cannot be imported is an error
(it used to be skipped without a word, so a broken area vanished from `arcx --help`)."""

from __future__ import annotations

import pytest

from arcx import cli


def test_every_area_registers_its_commands() -> None:
    parser = cli.build_parser()
    text = parser.format_help()
    for command in ("prepare", "run", "verify", "inspect", "sae-batches", "export-saelens"):
        assert command in text, f"`arcx {command}` is missing"


def test_an_area_that_fails_to_import_is_not_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "arcx.no_such_area"))
    with pytest.raises(ModuleNotFoundError, match=r"arcx\.no_such_area"):
        cli.build_parser()
