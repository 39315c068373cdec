"""The control socket under a seeded fuzzer: every reply structured, never `internal`, nothing changed.

More than a thousand messages per run, from a fixed seed (BOT_FUZZ_SEED picks another): random
bytes, invalid JSON, wrong shapes, 10,000-deep nesting, unknown commands, every known command
with wrong-typed, huge, negative, NaN, unicode and path-like arguments, oversized messages, and
200 connections at once. The daemon's feed is stepped by the test and stands still during the
fuzz, so strategy states, positions, pending orders and added symbols must be exactly as before.
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed

from bot.control.commands import COMMANDS, STREAM_COMMANDS
from tests.control.client import result
from tests.daemon.process import DaemonProcess, write_daemon_config

SEED = int(os.environ.get("BOT_FUZZ_SEED", "20261205"))
MAX_MESSAGE = 65_536
ALLOWED_ERRORS = {"bad_json", "bad_request", "unknown_command", "bad_args", "unknown_strategy", "invalid_state", "invalid_config"}
# Commands that change nothing when they succeed; every other command is always sent with bad arguments.
READ_ONLY = {"status", "strategies", "metrics", "positions", "validate", "trades", "equity", "candles"}
LOADED = ("ema_cross", "rsi_reversion")

PATHS = [
    "/etc/passwd", "/proc/self/environ", "../outside.json", "../../../../etc/shadow", "strategies/../../etc/passwd",
    "~root/.ssh/id_rsa", "C:\\Windows\\win.ini", "\\\\server\\share", "%2e%2e/%2e%2e/etc/passwd", "strategies/",
    ".", "..", "", "config.json", "journal.sqlite", "bot.sock", "daemon.log", "strategies/\x00.json", "a" * 5000,
    ("x" * 300 + "/") * 4, "file:///etc/passwd", "/dev/zero", "/dev/random", "strategies/nope.json", "😀.json",
]
STRINGS = ["", " ", "\x00", "\u202e", "😀" * 50, "NaN", "Infinity", "-1", "null", "<script>", "' OR 1=1 --", "A" * 70_000, "BTC/USD", "../"]


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _value(rng: random.Random) -> Any:
    """A JSON value no command takes for any field: wrong type, out of range, or absurd."""
    return rng.choice(
        [
            -1, -1e308, 1e308, 2**64 - 1, -(2**63), 0.5e-320, True, False, [], {}, [1, 2], {"a": {"b": {"c": 1}}}, "0.1", "NaN",
            rng.choice(STRINGS), rng.choice(PATHS), "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(1, 40))),
        ]
    )


def _bad_id(rng: random.Random) -> Any:
    """A strategy id that is no loaded strategy (or not a string at all)."""
    value = rng.choice([_value(rng), rng.choice(STRINGS) + "x", rng.choice(LOADED) + "\x00", rng.choice(LOADED).upper()])
    return value if value not in LOADED else value + "_"


def _known_command(rng: random.Random) -> dict[str, Any]:
    """A known command with arguments that must be refused (or a read-only one with odd arguments)."""
    cmd = rng.choice(sorted([*COMMANDS, *STREAM_COMMANDS]))
    args: Any
    if cmd in ("status", "strategies", "metrics", "shutdown", "risk-reset"):
        args = {rng.choice(STRINGS + ["id", "force", "now"]) or "k": _value(rng)}  # none takes arguments
    elif cmd in ("activate", "reload", "positions", "unload"):
        args = {"id": _bad_id(rng)}
        if cmd == "unload" and rng.random() < 0.5:
            args["close_positions"] = _value(rng)
    elif cmd == "deactivate":
        args = {"id": _bad_id(rng), "policy": rng.choice(["manage", "close", "freeze", "sell", 1, None])}
    elif cmd == "switch":
        args = {"from": _bad_id(rng), "to": _bad_id(rng), "policy": rng.choice(["manage", "x", 3])}
    elif cmd == "set":
        path = rng.choice(["quantity", "exits.stop_loss_pct", "fees.taker_bps", "risk.max_open_positions", "a..b", "", "__class__", "x" * 300, rng.choice(STRINGS)])
        value = rng.choice([-1, -1e308, "0.1", True, [], {"x": 1}, "😀", [[[[1]]]], rng.choice(PATHS)])
        args = {"id": rng.choice([*LOADED, _bad_id(rng)]), "path": path, "value": value}
    elif cmd in ("validate", "load"):
        args = {"file": rng.choice([*PATHS, _value(rng)])}
        if cmd == "load" and rng.random() < 0.3:
            args["activate"] = _value(rng)
    elif cmd == "add-symbol":
        args = {"symbol": rng.choice([*STRINGS, "ZZ/USD", "BTC/USD", "A/B:C", _value(rng)]), "file": rng.choice(PATHS), "timeframe": rng.choice([None, "1m", "0m", "-1h", "1y", _value(rng)])}
    elif cmd == "remove-symbol":
        args = {"symbol": rng.choice([*STRINGS, "BTC/USD", "ZZ/USD", _value(rng)])}
    elif cmd in ("trades", "equity", "candles"):
        # A bad id, or a loaded one with one bad number (the others fine, so each is reached).
        field = {"trades": rng.choice(["limit", "before"]), "equity": "points", "candles": rng.choice(["limit", "timeframe", "symbol"])}[cmd]
        args = {"id": _bad_id(rng)} if rng.random() < 0.3 else {"id": rng.choice(LOADED), field: _value(rng)}
    elif cmd == "events":
        args = {"strategy_id": _bad_id(rng)} if rng.random() < 0.5 else {"types": rng.choice([["nope"], "candle", [1], {}, [rng.choice(STRINGS)]])}
    else:  # a command added later: give it garbage
        args = {"x": _value(rng)}
    if rng.random() < 0.1:
        args = rng.choice([[], [1, 2], "args", 7, -1.5, None, True, rng.choice(STRINGS)])  # args that are not even an object
    return {"id": rng.choice([rng.randrange(1 << 31), "r" + str(rng.random())]), "cmd": cmd, "args": args}


def _message(rng: random.Random) -> str | bytes:
    kind = rng.randrange(10)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))  # a binary frame
    if kind == 1:
        return "".join(chr(rng.randrange(1, 0xD7FF)) for _ in range(rng.randrange(1, 200)))  # random text
    if kind == 2:
        good = orjson.dumps(_known_command(rng)).decode()
        cut = rng.randrange(len(good))
        return good[:cut] + rng.choice(["", "}", ",", "\x00", "NaN", "]]"]) + good[cut + 1 :]  # broken JSON
    if kind == 3:
        return rng.choice(["[]", "null", "1", '"status"', "true", '{"cmd": "status"}', '{"id": 1}', '{"id": true, "cmd": "status"}', '{"id": 1, "cmd": 5}', '{"id": 1, "cmd": "status", "args": []}', '{"id": {}, "cmd": "status"}', '{"id": 1, "cmd": "status", "args": {}, "extra": 1}'])
    if kind == 4:
        depth = rng.choice([33, 100, 1_000, 10_000])
        return '{"id": 1, "cmd": "set", "args": {"id": "ema_cross", "path": "quantity", "value": ' + _deep(depth) + "}}"
    if kind == 5 and rng.random() < 0.3:  # numbers JSON can write but nothing can hold
        return '{"id": 1, "cmd": "set", "args": {"id": "ema_cross", "path": "quantity", "value": ' + rng.choice(["1" + "0" * 400, "-1e999", "NaN", "Infinity", "1e-999"]) + "}}"
    if kind == 5:
        return orjson.dumps({"id": rng.randrange(100), "cmd": rng.choice(STRINGS + ["Status", "status ", "rm -rf", "__import__", "x" * 65]), "args": {}}).decode()
    return orjson.dumps(_known_command(rng)).decode()


class Fuzzer:
    """Sends messages on one connection, reconnecting when the daemon closes it (oversized messages)."""

    def __init__(self, socket: Path) -> None:
        self._socket = socket
        self.replies = 0
        self.closed_for_size = 0

    async def run(self, messages: list[str | bytes]) -> None:
        ws: ClientConnection | None = None
        try:
            for message in messages:
                if ws is None:
                    ws = await unix_connect(str(self._socket), max_size=None, open_timeout=60)
                await ws.send(message)
                try:
                    raw = await ws.recv()
                except ConnectionClosed as exc:
                    # Only a message over the limit may end the conversation, and with code 1009.
                    assert len(message) > MAX_MESSAGE, (message[:200], exc)
                    assert exc.rcvd is not None and exc.rcvd.code == 1009
                    self.closed_for_size += 1
                    ws = None
                    continue
                assert isinstance(raw, str)
                _check_reply(message, orjson.loads(raw))
                self.replies += 1
                if _command(message) in STREAM_COMMANDS:
                    # A stream request owns its connection: refused, the daemon ends it.
                    await ws.close()
                    ws = None
        finally:
            if ws is not None:
                await ws.close()


def _command(message: str | bytes) -> Any:
    try:
        data = orjson.loads(message) if isinstance(message, str) else None
    except orjson.JSONDecodeError:
        return None
    return data.get("cmd") if isinstance(data, dict) else None


def _check_reply(message: str | bytes, reply: Any) -> None:
    assert isinstance(reply, dict) and set(reply) in ({"id", "ok", "result"}, {"id", "ok", "error"}), (message[:200], reply)
    if reply["ok"]:
        assert _command(message) in READ_ONLY, (message[:200], reply)
        return
    error = reply["error"]
    assert set(error) == {"code", "message"} and isinstance(error["message"], str) and error["message"], reply
    assert error["code"] in ALLOWED_ERRORS, (message[:300], reply)


def _fingerprint(socket: Path) -> dict[str, Any]:
    status = result(socket, "status")
    for moving in ("uptime_s", "clock_ts", "feed"):
        status.pop(moving)
    return {"status": status, "positions": result(socket, "positions"), "strategies": result(socket, "strategies")["loaded"]}


@pytest.fixture
def paused(short_tmp: Path) -> Iterator[DaemonProcess]:
    """A daemon holding positions, its feed stepped by the test and standing still."""
    daemon = DaemonProcess(write_daemon_config(short_tmp), stepped=True)
    try:
        daemon.wait_ready()
        daemon.step_until(lambda: any(p["positions"] for p in result(daemon.socket, "positions").values()), "an open position", candles=20)
        yield daemon
    finally:
        daemon.stop()


def test_a_thousand_hostile_messages_change_nothing(paused: DaemonProcess) -> None:
    rng = random.Random(SEED)
    before = _fingerprint(paused.socket)
    assert any(p["positions"] for p in before["positions"].values())
    messages = [_message(rng) for _ in range(1_200)]
    messages += ["x" * (MAX_MESSAGE + 1), orjson.dumps({"id": 1, "cmd": "status", "args": {"pad": "y" * MAX_MESSAGE}}).decode()]
    rng.shuffle(messages)
    sequential = Fuzzer(paused.socket)

    async def burst() -> list[Fuzzer]:
        # 200 connections at once, each with a few messages of its own.
        fuzzers = [Fuzzer(paused.socket) for _ in range(200)]
        async with anyio.create_task_group() as tg:
            for index, fuzzer in enumerate(fuzzers):
                tg.start_soon(fuzzer.run, [_message(random.Random(SEED + index)) for _ in range(3)])
        return fuzzers

    anyio.run(sequential.run, messages)
    fuzzers = anyio.run(burst)
    assert sequential.replies + sequential.closed_for_size == len(messages)
    assert sequential.closed_for_size >= 2
    assert sum(f.replies + f.closed_for_size for f in fuzzers) == 600
    assert paused.proc.poll() is None, "the daemon died"
    assert _fingerprint(paused.socket) == before
    log = paused.log.read_text()
    assert "Traceback" not in log and "control command" not in log, log[-3000:]
    assert paused.stop() == 0
