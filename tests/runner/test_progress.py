"""Progress reporting: JSON lines off a terminal, a bar with an ETA on one (clock injected)."""

from __future__ import annotations

import io
import json

from arcx.runner.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_carry_counts_rate_and_eta():
    out, clock = io.StringIO(), Clock()
    p = Progress(
        units_total=4, units_done=1, enabled=True, stream=out, clock=clock, interactive=False
    )
    clock.now += 10
    p.add_tokens(tasks=8, tokens=5000)
    p.unit_committed(1, paddingFraction=0.25)
    line = json.loads(out.getvalue())
    assert line["event"] == "unit-committed" and line["unit"] == 1
    assert (line["unitsCommitted"], line["unitsTotal"], line["tasks"], line["tokens"]) == (
        2,
        4,
        8,
        5000,
    )
    assert line["tokensPerSec"] == 500.0
    assert line["etaSeconds"] == 20.0  # one unit in 10 s, two left
    assert line["paddingFraction"] == 0.25


def test_terminal_bar_and_silence_off_host_0():
    out, clock = io.StringIO(), Clock()
    p = Progress(
        units_total=2, units_done=0, enabled=True, stream=out, clock=clock, interactive=True
    )
    clock.now += 5
    p.add_tokens(tasks=3, tokens=1000)
    p.unit_committed(0)
    assert (
        "1/2 units" in out.getvalue()
        and "ETA 00:05" in out.getvalue()
        and "200 tok/s" in out.getvalue()
    )
    quiet = io.StringIO()
    Progress(units_total=2, units_done=0, enabled=False, stream=quiet, clock=clock).unit_committed(
        0
    )
    assert quiet.getvalue() == ""


def test_per_unit_padding_comes_from_the_growth_of_the_running_counts():
    out, clock = io.StringIO(), Clock()
    p = Progress(
        units_total=2, units_done=0, enabled=True, stream=out, clock=clock, interactive=False
    )
    p.add_tokens(tasks=1, tokens=100, unit=0, real_total=100, padded_total=128)
    p.add_tokens(tasks=1, tokens=50, unit=1, real_total=150, padded_total=256)
    p.unit_committed(0)
    p.unit_committed(1)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["tokensReal"], first["tokensPadded"]) == (100, 128)
    assert (second["tokensReal"], second["tokensPadded"]) == (50, 128)


def test_recorded_events_land_in_the_store_and_read_back_in_time_order(tmp_path):
    from arcx_store.backends import open_storage
    from arcx_store.layout import EVENTS_DIR, events_key

    from arcx.runner.progress import EventRecorder, read_events

    storage = open_storage(str(tmp_path))
    wall = iter([200.0, 100.0, 300.0]).__next__
    clock = Clock()
    rec_b = EventRecorder(storage, "b", wall=wall, clock=clock, flush_every_s=30)
    rec_b.record("unit-committed", unit=0)
    assert not (tmp_path / EVENTS_DIR).exists()  # not due yet
    rec_b.flush()
    rec_a = EventRecorder(storage, "a", wall=wall, clock=clock)
    rec_a.record("unit-committed", unit=1)
    clock.now += 31
    rec_a.record("unit-committed", unit=2)  # due: flushed without being asked
    events = read_events(storage)
    assert [(e["time"], e["unit"]) for e in events] == [(100.0, 1), (200.0, 0), (300.0, 2)]
    assert sorted(storage.list(EVENTS_DIR)) == [events_key("a"), events_key("b")]


def test_one_switch_picks_json_or_bars(monkeypatch):
    from arcx.runner.progress import LOG_FORMAT_ENV, Tracker, log_event

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv(LOG_FORMAT_ENV, "json")
    tty = Tty()
    log_event("start", tty, units=3)
    assert json.loads(tty.getvalue()) == {"event": "start", "units": 3}
    monkeypatch.setenv(LOG_FORMAT_ENV, "auto")
    tty = Tty()
    log_event("start", tty, units=3)
    assert tty.getvalue().strip() == "[start] units=3"
    plain, clock = io.StringIO(), Clock()
    t = Tracker("verify", total=4, unit="units", stream=plain, clock=clock, every_s=10)
    t.update(1)
    assert plain.getvalue() == ""  # not due
    clock.now += 10
    t.update(1, tokens=500)
    t.close()
    events = [json.loads(line) for line in plain.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["verify-progress", "verify-progress"]
    assert events[0]["units"] == 2 and events[0]["unitsTotal"] == 4
    assert events[0]["etaSeconds"] == 10.0 and events[0]["tokensPerSec"] == 50.0
    bar_out = Tty()
    monkeypatch.setenv(LOG_FORMAT_ENV, "human")
    t = Tracker("verify", total=4, unit="units", stream=bar_out, clock=clock)
    t.update(3)
    t.close()
    assert "3/4 units" in bar_out.getvalue()


def test_verify_and_export_report_progress_as_json_events(tmp_path):
    import re
    import subprocess
    import sys

    from tests.sae.stores import build_store, tokenizer_dir

    built = build_store(
        tmp_path / "s", model_source=str(tokenizer_dir(tmp_path / "model")), units=3, hosts=1
    )

    def arcx(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arcx.cli", "--log-format", "json", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def last(stderr: str, name: str) -> dict:
        events = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
        return [e for e in events if e["event"] == name][-1]

    res = arcx("verify", str(built.root))
    assert res.returncode == 0, res.stderr
    done = last(res.stderr, "verify-progress")
    assert (done["units"], done["unitsTotal"]) == (3, 3)
    res = arcx(
        "export-saelens", str(built.root), "--out", str(tmp_path / "x"), "--layer", "3",
        "--context-size", "16", "--keep-special-tokens",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = int(re.search(r"wrote (\d+) rows", res.stdout).group(1))
    done = last(res.stderr, "export-progress")
    assert done["rows"] == rows > 0 and done["tokens"] == 16 * rows
