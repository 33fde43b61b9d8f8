"""Format 3 (annotations, augmentations, statistics) against a reader of format 2: the older
reader refuses the store with one line saying to upgrade, never a traceback or a misread."""

from __future__ import annotations

import pytest
from arcx_store import layout
from arcx_store.errors import StoreFormatError
from arcx_store.manifest import read_manifest

from arcx.sae.loader import ActivationLoader
from arcx.sae.parts import SaeDataError
from tests.sae.stores import build_store, tokenizer_dir


@pytest.fixture
def format3_store(tmp_path):
    assert layout.FORMAT_VERSION == 3 and 3 in layout.READABLE_FORMATS
    return build_store(tmp_path, model_source=str(tokenizer_dir(tmp_path / "m")), units=1).root


@pytest.fixture
def format2_reader(monkeypatch):
    monkeypatch.setattr(layout, "FORMAT_VERSION", 2)
    monkeypatch.setattr(layout, "READABLE_FORMATS", (1, 2))


def test_a_format_2_reader_refuses_a_format_3_store(format3_store, format2_reader, capsys):
    from arcx_store.backends import open_storage

    from arcx.cli import main

    with pytest.raises(StoreFormatError, match="format version 3, newer than this arcx reads"):
        read_manifest(open_storage(str(format3_store)))
    with pytest.raises(SaeDataError, match="upgrade arcx"):
        ActivationLoader(str(format3_store), site="resid_post", layer=1, batch_size=4)
    assert main(["inspect", str(format3_store)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "upgrade arcx to read this store" in err[0]


def test_the_current_reader_reads_it(format3_store, capsys):
    from arcx.cli import main

    assert main(["inspect", str(format3_store)]) == 0
    assert "units        1/1 committed" in capsys.readouterr().out
