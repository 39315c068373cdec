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
from bot.events import Event, FeedState, Signal
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


def _signal(seq: int, ts: int, details: dict[str, Any]) -> Signal:
    return Signal(seq, ts, ts, "odd", "hold", 0.0, "BTC/USD", 47479.01099999999, details)


# What a daemon sends that is not an event of this version is the reader's part (test_ctl_events_reader.py).
@pytest.mark.parametrize(
    ("event", "shown"),
    [
        (_signal(7, 10**18, {"since": 2**70}), "7 1000000000000000000 signal odd decision=hold score=0 symbol=BTC/USD close=47479.011 analyzers.since=1180591620717411303424"),
        (_signal(8, 0, {"regime": "a b", "weights": [0.5, None]}), '8 1970-01-01 00:00Z signal odd decision=hold score=0 symbol=BTC/USD close=47479.011 analyzers.regime="a b" analyzers.weights=[0.5,null]'),
        (FeedState(9, 0, 0, "reconnecting", {"attempt": 2}, "BTC/USD", None), "9 1970-01-01 00:00Z feed_state - symbol=BTC/USD timeframe=null attempt=2 state=reconnecting"),
        (_signal(1, 0, _deep(2000)), "1 1970-01-01 00:00Z signal odd payload=(nested too deeply to print; --json shows it)"),
    ],
)
def test_any_event_prints_one_line_never_a_traceback(event: Event, shown: str) -> None:
    out = io.StringIO()
    print_event(Console(file=out, width=400), event)
    assert " ".join(out.getvalue().split()) == shown
