"""`bot ctl events` decodes each message with the event codec: one that does not fit is named and skipped, another version stops it."""
from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from rich.console import Console

from bot.control.ctl_cli import EXIT_NOT_RUNNING, EXIT_OK, EXIT_REFUSED, follow_events
from bot.control.ctl_output import print_event
from bot.event_codec import decode_message, encode_message
from bot.events import Event, StrategyStateChanged
from bot.fmt import format_fields, format_time, format_value
from tests.control.client import result
from tests.control.test_commands import FAST, write_strategy
from tests.daemon.process import DaemonProcess

TS = 1_641_299_400_000  # 2022-01-04 12:30Z
STREAMING = {"id": "events", "ok": True, "result": {"streaming": True}}
FOLLOWING = "following events (all types; all strategies); Ctrl-C to stop"


def _state(seq: int, state: str = "dormant") -> StrategyStateChanged:
    return StrategyStateChanged(seq, TS, TS + 5, "s1", state, "deactivate", "manage", None)


def _wire(event: Event, **changes: Any) -> dict[str, Any]:
    """The wire message the daemon sends for `event`, as the client parses it, with `changes` made to it."""
    wire: dict[str, Any] = orjson.loads(encode_message(event))
    return {**wire, **changes}


def _message(wire: Any) -> dict[str, Any]:
    return {"id": "events", "event": wire}


class Followed:
    """What `follow_events` printed and returned for a list of messages, and how many of them it read."""

    def __init__(self, messages: list[Any], as_json: bool = False) -> None:
        self.messages = messages
        self.read = 0
        self.as_json = as_json

    async def _stream(self) -> AsyncIterator[Any]:
        for message in self.messages:
            self.read += 1
            yield message

    async def run(self) -> tuple[int, list[str], list[str]]:
        out, err = io.StringIO(), io.StringIO()
        code = await follow_events(self._stream(), {}, self.as_json, Console(file=out, width=400), Console(file=err, width=400), out)
        return code, out.getvalue().splitlines(), err.getvalue().splitlines()


def _line(event: StrategyStateChanged) -> str:
    return f"{event.seq:>8} 2022-01-04 12:30Z strategy_state   s1               state={event.state} change=deactivate policy=manage error=null"


@pytest.mark.asyncio
async def test_a_message_that_does_not_fit_its_type_is_named_and_skipped_and_the_stream_goes_on() -> None:
    bad = _wire(_state(2))
    bad["payload"] = {**bad["payload"], "policy": 5}
    code, out, err = await Followed([STREAMING, _message(_wire(_state(1))), _message(bad), _message(_wire(_state(3, "active")))]).run()
    assert out == [_line(_state(1)), _line(_state(3, "active"))]
    assert err == [FOLLOWING, "error: skipped event seq 2 (strategy_state): payload.policy: expected str, got int (or null)"]
    # The stream ended whole otherwise, but the exit code says one message was not shown.
    assert code == EXIT_REFUSED


@pytest.mark.asyncio
async def test_json_prints_each_wire_message_as_received_and_skips_one_that_does_not_fit() -> None:
    first, third = _wire(_state(1)), _wire(_state(3, "active"))
    missing = _wire(_state(2))
    del missing["ts_init"]
    code, out, err = await Followed([STREAMING, _message(first), _message(missing), _message(third)], as_json=True).run()
    assert [orjson.loads(line) for line in out] == [first, third]
    assert err == ["error: skipped event seq 2: event message lacks ['ts_init']"]
    assert code == EXIT_REFUSED


@pytest.mark.parametrize(
    ("version", "shown"),
    [(2, "2"), (True, "True"), (None, "None")],  # None: no "v" at all, as a bot before versioned messages sent
)
@pytest.mark.asyncio
async def test_a_message_of_another_version_stops_the_stream_at_once(version: Any, shown: str) -> None:
    other = _wire(_state(2))
    if version is None:
        del other["v"]
    else:
        other["v"] = version
    followed = Followed([STREAMING, _message(_wire(_state(1))), _message(other), _message(_wire(_state(3)))])
    code, out, err = await followed.run()
    assert out == [_line(_state(1))]
    assert err == [
        FOLLOWING,
        f"error: event seq 2: event message version {shown} is not supported (this bot reads version 1): the daemon runs another version of the bot; use its own bot ctl",
    ]
    # Nothing after it is read: it would be of that version too.
    assert (code, followed.read) == (EXIT_NOT_RUNNING, 3)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (_message({**_wire(_state(7)), "payload": ["not", "an", "object"]}), "event seq 7 (strategy_state): payload: expected an object, got array"),
        (_message({**_wire(_state(7)), "seq": "9", "ts": "soon"}), "event seq '9' (strategy_state): seq: expected int, got str"),
        (_message({**_wire(_state(7)), "type": 3}), "event seq 7 (3): type: expected str, got int"),
        (_message({**_wire(_state(7)), "type": "note"}), "event seq 7 (note): type: unknown event type 'note'"),
        (_message({**_wire(_state(7)), "strategy_id": None}), "event seq 7 (strategy_state): strategy_id: a strategy event needs a non-empty str, got None"),
        (_message({}), "message 2 of the stream: event message version None is not supported (this bot reads version 1)"),
        (_message("not an event"), "message 2 of the stream: event message is not an object"),
        ({"id": "events"}, "message 2 of the stream: neither an event nor a control reply"),
        (["not", "a", "message"], "message 2 of the stream: neither an event nor a control reply"),
        ({"ok": False, "error": "no shape"}, "message 2 of the stream: neither an event nor a control reply"),
    ],
)
@pytest.mark.asyncio
async def test_whatever_the_daemon_sends_is_an_event_or_one_error_line_never_a_traceback(message: Any, error: str) -> None:
    code, out, err = await Followed([STREAMING, message, _message(_wire(_state(3)))]).run()
    assert err[0] == FOLLOWING and len(err) == 2, err
    assert error in err[1], err
    if "version" in error:  # no "v": what a bot before versioned messages sent
        assert (code, out) == (EXIT_NOT_RUNNING, [])
    else:  # a message that only does not fit is skipped and the next one shown
        assert (code, out) == (EXIT_REFUSED, [_line(_state(3))])
        assert err[1] == f"error: skipped {error}"


@pytest.mark.asyncio
async def test_a_refusal_ends_the_stream_with_its_message_and_a_whole_stream_exits_0() -> None:
    refusal = {"id": "events", "ok": False, "error": {"code": "slow_reader", "message": "reader too slow: 9 events dropped; reconnect to resume"}}
    code, out, err = await Followed([STREAMING, _message(_wire(_state(1))), refusal, _message(_wire(_state(3)))]).run()
    assert (code, out, err) == (EXIT_REFUSED, [_line(_state(1))], [FOLLOWING, "error: reader too slow: 9 events dropped; reconnect to resume"])
    code, out, err = await Followed([STREAMING, _message(_wire(_state(1)))]).run()
    assert (code, out, err) == (EXIT_OK, [_line(_state(1))], [FOLLOWING])


# -- against a real daemon, over its socket ----------------------------------------------------
class Follower:
    """`bot ctl events ARGS` as a child process; its lines collected as they come (a thread per pipe)."""

    def __init__(self, socket: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "ctl", "--socket", str(socket), "events", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [threading.Thread(target=self._read, args=(pipe, lines)) for pipe, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: IO[str], lines: list[str]) -> None:
        for line in pipe:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, probe: Callable[[Follower], bool], what: str, timeout: float = 30.0) -> None:
        """Until `probe(self)` holds for the lines read so far."""
        with self._changed:
            assert self._changed.wait_for(lambda: probe(self), timeout), f"no {what} from bot ctl events: {self.out[-5:]} {self.err}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        for reader in self._readers:
            reader.join(30)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


def _printed_before(wire: dict[str, Any]) -> str:
    """The line bot ctl events printed from the wire dict before it decoded it (its output must not change)."""
    body = format_fields(wire["payload"])
    return f"{wire['seq']:>8} {format_time(wire['ts'])} {wire['type']:<16} {format_value('strategy_id', wire['strategy_id'] or '-'):<16} {body}"


def _printed(event: Event) -> str:
    out = io.StringIO()
    print_event(Console(file=out, width=None, soft_wrap=True), event)
    return out.getvalue().rstrip("\n")


def test_every_event_a_trading_daemon_streams_decodes_and_prints_as_it_did(stepped: DaemonProcess) -> None:
    daemon = stepped
    write_strategy(daemon.folder, "ema_fast", **FAST, exits={"stop_loss_pct": 2.0, "take_profit": [{"pct": 0.2, "close_pct": 50}], "trailing": {"activation_pct": 0.1, "distance_pct": 0.3}, "break_even_after_first_take_profit": True})
    human = Follower(daemon.socket)
    as_json = Follower(daemon.socket, "--json")
    try:
        human.wait_for(lambda f: f.err == [FOLLOWING], "following line")
        # --json prints nothing until the first event: step until a candle shows it streams to it too.
        daemon.step_until(lambda: as_json.out, "first --json event")
        result(daemon.socket, "load", {"file": "strategies/ema_fast.json", "activate": True})
        # Until a take-profit rung closed part of a position, and a position closed after that.
        daemon.step_until(lambda: '"type":"position_closed"' in "".join(as_json.out).partition('"type":"position_reduced"')[2], "take-profit, then a close")
        # A last event both print: then each has every event before it.
        result(daemon.socket, "deactivate", {"id": "ema_fast"})
        for follower in (human, as_json):
            # "deactivated", not "dormant": the load's own state change is dormant too, and was printed long before.
            follower.wait_for(lambda f: any("strategy_state" in line and "deactivated" in line and "ema_fast" in line for line in f.out), "last state change")
    finally:
        human.stop()
        as_json.stop()
    # Every message decoded (nothing skipped), --json printed each wire message as it came.
    assert human.err == [FOLLOWING] and as_json.err == [], (human.err, as_json.err)
    wires = {wire["seq"]: wire for wire in map(orjson.loads, as_json.out)}
    events = {seq: decode_message(orjson.dumps(wire)) for seq, wire in wires.items()}
    assert all(wire["v"] == 1 and wire["ts_init"] >= wire["ts"] for wire in wires.values())
    lines = {int(line.split()[0]): line for line in human.out}
    common = sorted(set(lines) & set(wires))
    assert common and common[-1] == max(wires) == max(lines)
    assert {events[seq].type for seq in common} >= {"candle", "signal", "order_submitted", "order_filled", "position_opened", "position_reduced", "position_closed", "stop_updated", "trailing_activated", "strategy_state"}
    for seq in common:
        # The line is the typed event's, and reads as the wire dict's did before decoding.
        assert lines[seq] == _printed(events[seq]) == _printed_before(wires[seq]), seq
