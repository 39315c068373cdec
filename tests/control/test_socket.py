"""The control socket under stress: who owns the path, garbage input, many clients, slow readers."""
from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed

from bot.control.client import ControlClient
from tests.control.client import call, result
from tests.daemon.process import DaemonProcess, write_daemon_config

KNOWN_COMMANDS = (
    "activate", "deactivate", "events", "load", "metrics", "positions", "reload",
    "set", "shutdown", "status", "strategies", "switch", "unload", "validate",
)  # fmt: skip
MAX_MESSAGE = 4096


# -- helpers ----------------------------------------------------------------------------------------
def bot_run(config: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`bot run --config CONFIG` to completion (for daemons that must refuse to start)."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        cwd=config.parent,
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
    )


def no_trade_config(folder: Path, **overrides: Any) -> Path:
    """The daemon config with the repo's strategies capped below their order size: they run, signal and
    get risk-rejected, so states and positions stay fixed while the feed and the event stream run at speed."""
    config = write_daemon_config(folder, **overrides)
    for path in (folder / "strategies").glob("*.json"):
        spec = orjson.loads(path.read_bytes())
        spec["risk"] = {**spec.get("risk", {}), "max_position_size": spec["quantity"] / 10}
        path.write_bytes(orjson.dumps(spec, option=orjson.OPT_INDENT_2))
    return config


@pytest.fixture(scope="module")
def steady() -> Iterator[DaemonProcess]:
    """One daemon shared by the garbage and concurrency tests: 3000x feed, no trades, small messages."""
    folder = Path(tempfile.mkdtemp(prefix="botd-", dir="/tmp"))
    process = DaemonProcess(no_trade_config(folder, control={"socket": "bot.sock", "max_message_bytes": MAX_MESSAGE}))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
        shutil.rmtree(folder, ignore_errors=True)


def fingerprint(sock: Path) -> dict[str, Any]:
    """What no bad client may change: each strategy's state, policy, positions, error, and error counters."""
    status = result(sock, "status")
    metrics = result(sock, "metrics")
    return {
        "health": status["health"],
        "feed": status["feed"]["state"],
        "strategies": {sid: (s["state"], s["policy"], s["positions"], s["last_error"]) for sid, s in status["strategies"].items()},
        "errors": {sid: (m["errors"], m["actions_failed"]) for sid, m in metrics["strategies"].items()},
    }


def assert_unaffected(daemon: DaemonProcess, before: dict[str, Any]) -> None:
    """The daemon still runs, answers, plays its feed and has the state it had before."""
    assert daemon.proc.poll() is None, daemon.log.read_text()
    candles = result(daemon.socket, "status")["feed"]["candles"]
    assert fingerprint(daemon.socket) == before
    deadline = time.monotonic() + 5.0
    while result(daemon.socket, "status")["feed"]["candles"] <= candles:
        assert time.monotonic() < deadline, "the feed stopped advancing"
        time.sleep(0.01)
    assert "control command" not in daemon.log.read_text()  # no internal error was logged


def open_fds(pid: int) -> int:
    """How many file descriptors a process holds (Linux)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def request(request_id: Any, cmd: str, args: dict[str, Any] | None = None) -> str:
    """One request message."""
    return orjson.dumps({"id": request_id, "cmd": cmd, "args": args or {}}).decode()


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next message, as a dict."""
    message: dict[str, Any] = orjson.loads(await ws.recv())
    return message


# -- 1. who owns the socket ------------------------------------------------------------------------
def test_socket_is_private_and_a_second_daemon_refuses(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(daemon.socket.stat().st_mode)
    inode = daemon.socket.stat().st_ino

    second = bot_run(daemon.config)
    assert second.returncode == 2, second.stderr
    # The same config: its journal's lock refuses it first, before the socket is even looked at.
    assert f"journal {daemon.folder / 'journal.sqlite'} is in use by another bot process (pid {daemon.proc.pid})" in second.stderr

    # The first daemon neither lost its socket nor stopped answering.
    assert daemon.proc.poll() is None
    assert daemon.socket.stat().st_ino == inode
    status = result(daemon.socket, "status")
    assert status["health"] == "ok"
    assert set(status["strategies"]) == {"ema_cross", "rsi_reversion"}

    assert daemon.stop() == 0
    assert not daemon.socket.exists()


def test_sigterm_during_startup_stops_cleanly(short_tmp: Path) -> None:
    # A long backfill keeps the daemon starting up for a few hundred milliseconds after its socket exists.
    process = DaemonProcess(write_daemon_config(short_tmp, feed={"speed": 3000, "loop": True, "backfill": 40_000}))
    try:
        deadline = time.monotonic() + 30.0
        while not process.socket.exists():
            assert process.proc.poll() is None and time.monotonic() < deadline, process.log.read_text()
            time.sleep(0.002)
        process.proc.send_signal(signal.SIGTERM)
        process.proc.wait(20)
    finally:
        process.stop()
    assert process.proc.returncode == 0
    assert not process.socket.exists()


def test_stale_socket_is_replaced(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp)
    path = short_tmp / "bot.sock"
    # A socket file left behind by a process that died: bound, closed, never unlinked.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leftover:
        leftover.bind(str(path))
    assert stat.S_ISSOCK(path.lstat().st_mode)

    process = DaemonProcess(config)
    try:
        process.wait_ready()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert result(path, "status")["health"] == "ok"
    finally:
        code = process.stop()
    assert code == 0
    assert not path.exists()


@pytest.mark.parametrize("occupant", ["file", "directory", "symlink"])
def test_non_socket_at_the_socket_path_is_left_alone(short_tmp: Path, occupant: str) -> None:
    config = write_daemon_config(short_tmp)
    path = short_tmp / "bot.sock"
    precious = short_tmp / "precious.txt"
    precious.write_bytes(b"not a socket\n")
    if occupant == "file":
        path.write_bytes(b"not a socket\n")
    elif occupant == "directory":
        path.mkdir()
        (path / "inside.txt").write_bytes(b"keep me\n")
    else:
        path.symlink_to(precious)
    before = path.lstat()

    done = bot_run(config)
    assert done.returncode == 2, done.stderr
    # The daemon resolves the configured path, so a symlink is judged (and named) by its target.
    assert str(path.resolve()) in done.stderr and "not a socket" in done.stderr
    after = path.lstat()
    assert (after.st_mode, after.st_ino, after.st_mtime_ns) == (before.st_mode, before.st_ino, before.st_mtime_ns)
    assert precious.read_bytes() == b"not a socket\n"
    if occupant == "file":
        assert path.read_bytes() == b"not a socket\n"
    elif occupant == "directory":
        assert (path / "inside.txt").read_bytes() == b"keep me\n"


def test_socket_path_too_long_is_refused(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp, control={"socket": "s" * 110 + ".sock"})
    done = bot_run(config)
    assert done.returncode == 2, done.stderr
    assert "too long" in done.stderr
    assert list(short_tmp.glob("s*.sock")) == []


# -- 3. garbage -----------------------------------------------------------------------------------
GARBAGE = [
    # (message, id echoed, error code, words the message must contain)
    pytest.param("{not json", None, "bad_json", ["JSON"], id="not-json"),
    pytest.param("", None, "bad_json", ["JSON"], id="empty"),
    pytest.param(b"\xff\xfe\x00garbage", None, "bad_request", ["binary", "text"], id="binary-frame"),
    pytest.param(b'{"id": 1, "cmd": "status", "args": {}}', None, "bad_request", ["binary", "text"], id="binary-frame-of-json"),
    pytest.param("[1, 2, 3]", None, "bad_request", ["object"], id="json-array"),
    pytest.param('"status"', None, "bad_request", ["object"], id="json-string"),
    pytest.param("null", None, "bad_request", ["object"], id="json-null"),
    pytest.param('{"id": 1, "args": {}}', 1, "bad_request", ["cmd"], id="missing-cmd"),
    pytest.param('{"cmd": "status", "args": {}}', None, "bad_request", ["id"], id="missing-id"),
    pytest.param('{"id": "x", "cmd": "status", "args": {}, "extra": 1}', "x", "bad_request", ["extra"], id="extra-field"),
    pytest.param('{"id": 2, "cmd": "status", "args": [1]}', 2, "bad_request", ["args"], id="args-not-object"),
    pytest.param('{"id": 3, "cmd": ""}', 3, "bad_request", ["cmd"], id="empty-cmd"),
    pytest.param('{"id": 4, "cmd": 7}', 4, "bad_request", ["cmd"], id="cmd-not-string"),
    pytest.param('{"id": [1], "cmd": "status"}', None, "bad_request", ["id"], id="id-list"),
    pytest.param('{"id": 5, "cmd": "frobnicate"}', 5, "unknown_command", ["frobnicate", *KNOWN_COMMANDS], id="unknown-command"),
    pytest.param(request(6, "deactivate", {"id": "ema_cross", "policy": 5}), 6, "bad_args", ["policy"], id="policy-int"),
    pytest.param(request(7, "deactivate", {"id": "ema_cross", "policy": "panic"}), 7, "bad_args", ["policy"], id="policy-unknown"),
    pytest.param(request(8, "deactivate", {"policy": "close"}), 8, "bad_args", ["id"], id="id-missing"),
    pytest.param(request(9, "activate", {"id": 5}), 9, "bad_args", ["id"], id="id-int"),
    pytest.param(request(10, "status", {"verbose": True}), 10, "bad_args", ["verbose"], id="unexpected-arg"),
    pytest.param(request(11, "unload", {"id": "ema_cross", "close_positions": "perhaps"}), 11, "bad_args", ["close_positions"], id="bool-garbage"),
    pytest.param(request(12, "set", {"id": "ema_cross", "path": "quantity"}), 12, "bad_args", ["value"], id="set-without-value"),
    pytest.param(request(13, "switch", {"from": "ema_cross"}), 13, "bad_args", ["to"], id="switch-without-target"),
    pytest.param(request(14, "load", {"file": ""}), 14, "bad_args", ["file"], id="load-empty-file"),
    pytest.param(request(15, "activate", {"id": "nope"}), 15, "unknown_strategy", ["nope"], id="activate-unknown"),
    pytest.param(request(16, "deactivate", {"id": "nope", "policy": "close"}), 16, "unknown_strategy", ["nope"], id="deactivate-unknown"),
    pytest.param(request(17, "unload", {"id": "nope"}), 17, "unknown_strategy", ["nope"], id="unload-unknown"),
    pytest.param(request(18, "reload", {"id": "nope"}), 18, "unknown_strategy", ["nope"], id="reload-unknown"),
    pytest.param(request(19, "positions", {"id": "nope"}), 19, "unknown_strategy", ["nope"], id="positions-unknown"),
    pytest.param(request(20, "set", {"id": "nope", "path": "quantity", "value": 1}), 20, "unknown_strategy", ["nope"], id="set-unknown"),
    pytest.param(request(21, "switch", {"from": "ema_cross", "to": "nope"}), 21, "unknown_strategy", ["nope"], id="switch-to-unknown"),
]


@pytest.mark.parametrize(("message", "echoed", "code", "words"), GARBAGE)
def test_bad_request_gets_an_error_and_the_connection_stays_usable(
    steady: DaemonProcess, message: str | bytes, echoed: Any, code: str, words: list[str]
) -> None:
    before = fingerprint(steady.socket)

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        with anyio.fail_after(10):
            async with unix_connect(str(steady.socket)) as ws:
                await ws.send(message)
                reply = await receive(ws)
                await ws.send(request("after", "status"))
                return reply, await receive(ws)

    reply, after = anyio.run(go)
    assert reply["ok"] is False and reply["id"] == echoed, reply
    assert reply["error"]["code"] == code, reply
    for word in words:
        assert word in reply["error"]["message"], reply
    assert after["id"] == "after" and after["ok"] is True, after
    assert_unaffected(steady, before)


@pytest.mark.parametrize(
    ("args", "code", "word"),
    [({"strategy_id": "nope"}, "unknown_strategy", "nope"), ({"types": ["nope"]}, "bad_args", "nope"), ({"follow": True}, "bad_args", "follow")],
    ids=["unknown-strategy", "unknown-type", "unexpected-arg"],
)
def test_bad_events_request_is_refused(steady: DaemonProcess, args: dict[str, Any], code: str, word: str) -> None:
    before = fingerprint(steady.socket)
    reply = call(steady.socket, "events", args)
    assert reply["ok"] is False and reply["error"]["code"] == code and word in reply["error"]["message"], reply
    assert_unaffected(steady, before)


def test_message_over_the_limit_closes_the_connection_1009(steady: DaemonProcess) -> None:
    before = fingerprint(steady.socket)

    async def go() -> tuple[dict[str, Any], int | None]:
        with anyio.fail_after(10):
            async with unix_connect(str(steady.socket), max_size=None) as ws:
                # Just under the configured limit: served.
                small = await _exchange(ws, request("y" * (MAX_MESSAGE - 100), "status"))
                await ws.send(request("x" * (MAX_MESSAGE + 100), "status"))
                try:
                    await ws.recv()
                except ConnectionClosed as exc:
                    return small, exc.rcvd.code if exc.rcvd else None
                raise AssertionError("an oversized message was answered")

    small, code = anyio.run(go)
    assert small["ok"] is True and small["id"] == "y" * (MAX_MESSAGE - 100)
    assert code == 1009
    assert_unaffected(steady, before)


async def _exchange(ws: ClientConnection, message: str) -> dict[str, Any]:
    await ws.send(message)
    return await receive(ws)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x01\x02\x03 not http at all\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"PUT /control HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        bytes(range(256)) * 256,
        b"",
        b"GET / HTTP/1.1\r\nHost: local",  # half a handshake, then gone
    ],
    ids=["binary-line", "plain-http", "put", "huge-header", "64k-binary", "connect-and-close", "half-handshake"],
)
def test_raw_non_websocket_bytes(steady: DaemonProcess, payload: bytes) -> None:
    before = fingerprint(steady.socket)
    complete = payload.endswith(b"\r\n\r\n") or len(payload) > 60_000
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(5.0)
        raw.connect(str(steady.socket))
        try:
            raw.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon hung up before reading it all
        response = b""
        if complete:
            # The daemon answers with an HTTP error or nothing, and hangs up (a timeout fails the test).
            try:
                while chunk := raw.recv(65536):
                    response += chunk
            except ConnectionResetError:
                pass
    assert response == b"" or response.startswith(b"HTTP/1.1 4"), response[:200]
    assert_unaffected(steady, before)


def test_events_clients_that_vanish_mid_stream_leave_nothing_behind(steady: DaemonProcess) -> None:
    before = fingerprint(steady.socket)
    fds = open_fds(steady.proc.pid)

    async def vanish() -> None:
        with anyio.fail_after(10):
            ws = await unix_connect(str(steady.socket))
            await ws.send(request("ev", "events"))
            assert (await receive(ws))["result"] == {"streaming": True}
            for _ in range(3):
                message = await receive(ws)
                assert message["id"] == "ev" and "event" in message, message
            ws.transport.abort()  # no close frame: the process died, as far as the daemon can tell
            await ws.wait_closed()

    async def twenty() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(vanish)
        for _ in range(10):
            await vanish()

    anyio.run(twenty)

    # Answers still come, and every connection is released (the handler ended and its stream with it).
    for _ in range(20):
        result(steady.socket, "status")
    deadline = time.monotonic() + 5.0
    while open_fds(steady.proc.pid) > fds:
        assert time.monotonic() < deadline, f"{open_fds(steady.proc.pid)} descriptors open, {fds} before"
        time.sleep(0.02)
    assert_unaffected(steady, before)


# -- 4. many clients at once ----------------------------------------------------------------------
def test_concurrent_clients_get_their_own_replies(steady: DaemonProcess) -> None:
    clients, per_client = 10, 20
    replies: dict[int, tuple[list[Any], list[dict[str, Any]]]] = {}

    async def client(n: int, all_connected: anyio.Event, connected: list[int]) -> None:
        async with unix_connect(str(steady.socket)) as ws:
            connected.append(n)
            if len(connected) == clients:
                all_connected.set()
            await all_connected.wait()
            ids: list[Any] = [f"c{n}-{i}" if i % 2 else n * 1000 + i for i in range(per_client)]
            got = []
            if n % 2:  # pipelined: all requests first, then all replies, in order
                for rid in ids:
                    await ws.send(request(rid, "status"))
                got = [await receive(ws) for _ in ids]
            else:
                for rid in ids:
                    await ws.send(request(rid, "status"))
                    got.append(await receive(ws))
            replies[n] = (ids, got)

    async def go() -> None:
        all_connected = anyio.Event()
        connected: list[int] = []
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for n in range(clients):
                    tg.start_soon(client, n, all_connected, connected)

    anyio.run(go)
    assert sorted(replies) == list(range(clients))
    for ids, got in replies.values():
        assert [r["id"] for r in got] == ids
        for reply in got:
            assert reply["ok"] is True, reply
            assert set(reply["result"]["strategies"]) == {"ema_cross", "rsi_reversion"}


# -- 5. a slow events reader ----------------------------------------------------------------------
def test_slow_events_readers_are_dropped_while_the_feed_plays_on(short_tmp: Path) -> None:
    config = write_daemon_config(
        short_tmp,
        control={"socket": "bot.sock", "event_buffer": 50},
        feed={"speed": 60_000, "loop": True, "backfill": 3000},  # 1000 candles/s, ~1300 events/s
    )
    process = DaemonProcess(config)
    sock = process.socket

    async def candles() -> int:
        """The feed's candle count, from a fresh connection (a status must still be answered)."""
        with anyio.fail_after(10):
            async with ControlClient(sock) as client:
                reply = await client.call("status")
        count: int = reply["result"]["feed"]["candles"]
        return count

    async def advanced(by: int) -> int:
        """Await the feed playing `by` more candles; its count then. Counted in candles, not seconds: no rate is timed."""
        target = await candles() + by
        with anyio.fail_after(60):
            while (count := await candles()) < target:
                await anyio.sleep(0.05)
        return count

    async def stalled_reader(name: str, wake: anyio.Event | float, out: dict[str, Any]) -> None:
        """Open an unfiltered stream, read nothing until `wake` (an event, or seconds), then read until the daemon closes it."""
        got: dict[str, Any] = {"events": 0, "errors": [], "closed": False, "close": None}
        out[name] = got
        async with unix_connect(str(sock)) as ws:
            await ws.send(request(name, "events"))
            assert (await receive(ws))["result"] == {"streaming": True}
            subscribed.append(name)
            if isinstance(wake, float):
                await anyio.sleep(wake)
            else:
                await wake.wait()
            with anyio.fail_after(20):
                try:
                    while True:
                        message = await receive(ws)
                        if "event" in message:
                            got["events"] += 1
                        else:
                            got["errors"].append(message)
                except ConnectionClosed as exc:
                    got["closed"] = True
                    got["close"] = exc.rcvd.code if exc.rcvd else None

    subscribed: list[str] = []

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        await advanced(500)  # the premise: the feed plays
        brief_wakes = anyio.Event()
        async with anyio.create_task_group() as tg:
            # One reader wakes while the daemon still waits on its send (it must then learn why it
            # is dropped), the other only after the daemon gave up on it (a close is enough).
            tg.start_soon(stalled_reader, "brief", brief_wakes, out)
            tg.start_soon(stalled_reader, "long", 6.5, out)
            with anyio.fail_after(10):
                while len(subscribed) < 2:
                    await anyio.sleep(0.01)
            # 2,000 candles are ~2,600 events: far more than the stream's 50 and the socket buffers
            # hold, so the daemon has been refusing both readers' events (not waiting on them)
            # while the feed played on. Counted in candles, the brief reader wakes as soon on a
            # slow host as on a fast one, before the daemon's patience (5 s) with it runs out.
            out["while_stalled"] = await advanced(2000)
            brief_wakes.set()
        out["after"] = await advanced(500)
        # A reader that keeps up is still served.
        with anyio.fail_after(10):
            async with unix_connect(str(sock)) as ws:
                await ws.send(request("fresh", "events", {"types": ["candle"]}))
                assert (await receive(ws))["ok"] is True
                out["fresh"] = [await receive(ws) for _ in range(20)]
        return out

    try:
        process.wait_ready()
        out = anyio.run(scenario)
        status = result(sock, "status")
        code = process.stop()
    finally:
        process.stop()

    for name in ("brief", "long"):
        reader = out[name]
        # Dropped after what the buffers held (the seconds of events it missed were not kept for it).
        assert reader["closed"], out
        assert reader["events"] < 5000, out
        for error in reader["errors"]:
            assert error["id"] == name and error["ok"] is False, error
            assert error["error"]["code"] == "slow_reader" and "dropped" in error["error"]["message"], error
    # Awake again while the daemon still waited on it: told why, then closed as a policy violation.
    assert len(out["brief"]["errors"]) == 1 and out["brief"]["close"] == 1008, out
    # Asleep past the daemon's patience: a policy-violation close, or simply hung up on.
    assert out["long"]["close"] in (1008, None), out
    assert all(m["id"] == "fresh" and m["event"]["type"] == "candle" for m in out["fresh"])
    assert status["health"] == "ok"
    assert all(s["state"] == "active" for s in status["strategies"].values())
    assert code == 0


def test_reader_that_never_reads_again_is_hung_up_on(short_tmp: Path) -> None:
    config = write_daemon_config(
        short_tmp, control={"socket": "bot.sock", "event_buffer": 50}, feed={"speed": 60_000, "loop": True, "backfill": 3000}
    )
    process = DaemonProcess(config)

    async def scenario() -> float | None:
        async with unix_connect(str(process.socket)) as ws:
            await ws.send(request("never", "events"))
            assert (await receive(ws))["result"] == {"streaming": True}
            start = time.monotonic()
            fd = ws.transport.get_extra_info("socket").fileno()
            poller = select.poll()
            poller.register(fd, select.POLLHUP | select.POLLRDHUP)
            # Buffers fill in about a second, then the daemon's send waits 5 s. The bound is only a
            # guard against waiting forever: how soon is the patience's business, not this test's.
            while time.monotonic() - start < 60:
                if poller.poll(0):
                    return time.monotonic() - start
                await anyio.sleep(0.05)
            ws.transport.abort()
            return None

    try:
        process.wait_ready()
        hung_up_after = anyio.run(scenario)
        assert result(process.socket, "status")["health"] == "ok"
    finally:
        process.stop()
    assert hung_up_after is not None, "the daemon still holds a reader that has accepted nothing for 60 s"
