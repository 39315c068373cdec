"""`bot ctl events` prints whatever a strategy puts in an event: a time-named field no date can hold, lists of objects."""
from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from bot.control.ctl_output import print_event
from tests.control.test_ctl_output import _line_of
from tests.daemon.process import DaemonProcess, write_daemon_config

# A module strategy whose signal details hold what a strategy author may well put there: a
# field named like a time ("until") holding a count, not epoch milliseconds, and a list of objects.
ODD_DETAILS = '''
"""Signals "hold" on every candle, with details that are not what a time field or a flat list usually hold."""
from bot.strategy.base import Strategy


class OddDetails(Strategy):
    """Never trades; explains itself with odd details."""

    name = "odd_details"
    version = "1.0.0"

    def on_candle(self, symbol, timeframe, candle):
        details = {"until": 10**18, "inputs": [{"symbol": symbol, "file": "BTC-USD-PERP_1m.csv", "weight": 0.5}]}
        self.ctx.signal("hold", 0.0, symbol, candle, details)
'''


@pytest.fixture
def odd(short_tmp: Path) -> Iterator[DaemonProcess]:
    """A stepped daemon running odd_details alone."""
    config = write_daemon_config(short_tmp, strategies=[{"file": "strategies/odd.json"}])
    (short_tmp / "strategies" / "odd_details.py").write_text(ODD_DETAILS)
    (short_tmp / "strategies" / "odd.json").write_bytes(
        orjson.dumps({"id": "odd", "module": "odd_details", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1})
    )
    process = DaemonProcess(config, stepped=True)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def test_events_print_a_time_field_no_date_can_hold_and_lists_of_objects_as_json(odd: DaemonProcess) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "bot", "ctl", "--socket", str(odd.socket), "events", "--type", "signal"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _line_of(follower.stderr) == "following events (signal; all strategies); Ctrl-C to stop"
        odd.step(1)
        line = _line_of(follower.stdout)
    finally:
        follower.terminate()
        follower.wait(30)
        assert follower.stdout is not None and follower.stderr is not None
        rest = follower.stderr.read()
        follower.stdout.close()
        follower.stderr.close()
    assert "Traceback" not in rest, rest
    # The count shown as it is (no date holds it), the list as JSON (never a Python dict's repr).
    assert " signal " in line and " odd " in line, line
    assert "analyzers.until=1000000000000000000 " in line, line
    assert line.endswith('analyzers.inputs=[{"symbol":"BTC/USD","file":"BTC-USD-PERP_1m.csv","weight":0.5}]'), line


def _deep(levels: int) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for _ in range(levels):
        nested = {"a": nested}
    return nested


@pytest.mark.parametrize(
    ("event", "shown"),
    [
        ({"seq": 7, "ts": 10**18, "type": "signal", "strategy_id": "odd", "payload": {"since": 2**70}}, "7 1000000000000000000 signal odd since=1180591620717411303424"),
        ({"seq": 8, "ts": 0, "type": "note", "strategy_id": None, "payload": ["not", "an", "object"]}, '8 1970-01-01 00:00Z note - payload=["not","an","object"]'),
        ({"seq": "9", "ts": "soon", "type": 3}, '9 soon 3 - payload=null'),
        ({}, "null null null - payload=null"),
        ("not an event", 'null null null - payload="not an event"'),
        ({"seq": 1, "ts": 0, "type": "deep", "strategy_id": None, "payload": _deep(2000)}, "1 1970-01-01 00:00Z deep - payload=(nested too deeply to print; --json shows it)"),
    ],
)
def test_any_event_prints_one_line_never_a_traceback(event: Any, shown: str) -> None:
    out = io.StringIO()
    print_event(Console(file=out, width=400), event)
    assert " ".join(out.getvalue().split()) == shown
