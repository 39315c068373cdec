"""What the control socket refuses: code to import, files outside the allowed folders, bad symbols, hostile arguments."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from websockets.asyncio.client import connect, unix_connect

from bot.journal import Journal
from tests.control.client import call, result
from tests.daemon.process import DaemonProcess, write_daemon_config
from tests.support import BTC_1M

EVIL_MODULE = '''
"""Writes a file and sleeps when imported: it must never run inside the daemon."""
import pathlib, time
pathlib.Path(__file__).with_name("IMPORTED").write_text("the daemon imported me")
time.sleep(8)
'''


def _no_secret(reply: dict[str, Any], *secrets: str) -> None:
    text = orjson.dumps(reply).decode()
    for secret in secrets:
        assert secret not in text, (secret, text)


def _evil_project(folder: Path, extra: Path) -> Path:
    """A config whose strategies folder and strategy_paths hold a module that must not be imported."""
    (folder / "strategies").mkdir(parents=True)
    (folder / "strategies" / "evil.py").write_text(EVIL_MODULE)
    extra.mkdir(parents=True)
    (extra / "evil_too.py").write_text(EVIL_MODULE)
    spec = {"id": "calm", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1, "analyzers": [{"type": "ema_cross", "params": {"fast": 3, "slow": 8}}]}
    (folder / "strategies" / "calm.json").write_bytes(orjson.dumps(spec))
    config = {
        "replay": {"candles": {"BTC/USD": {"path": str(BTC_1M), "timeframe": "1m"}}},
        "strategy_paths": [str(extra)],
        "strategies": [{"file": "strategies/calm.json"}],
    }
    (folder / "config.json").write_bytes(orjson.dumps(config))
    return folder / "config.json"


def test_validate_over_the_socket_imports_no_code(daemon: DaemonProcess) -> None:
    project = daemon.folder / "x"
    config = _evil_project(project, daemon.folder / "elsewhere")
    reply = call(daemon.socket, "validate", {"file": "x/config.json"})
    assert reply["ok"], reply
    assert reply["result"] == {"valid": True, "kind": "config", "strategies": ["calm"]}
    assert not (project / "strategies" / "IMPORTED").exists()
    assert not (daemon.folder / "elsewhere" / "IMPORTED").exists()
    # A strategy file naming a module the daemon did not discover at start is invalid, not imported.
    (project / "strategies" / "uses_evil.json").write_bytes(orjson.dumps({"id": "u", "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1, "module": "evil"}))
    named = result(daemon.socket, "validate", {"file": "x/strategies/uses_evil.json"})
    assert named["valid"] is False and [p["field"] for p in named["problems"]] == ["module"], named
    assert not (project / "strategies" / "IMPORTED").exists()
    # The command line still validates new code: that is where the user runs it, knowingly.
    assert config.exists()


@pytest.mark.parametrize("cmd", ["validate", "load", "add-symbol"])
@pytest.mark.parametrize("name", ["/etc/passwd", "/proc/self/environ", "../outside.json", "link/passwd"])
def test_files_outside_the_allowed_folders_are_bad_args_naming_only_the_path(daemon: DaemonProcess, cmd: str, name: str) -> None:
    link = daemon.folder / "link"
    if not link.exists():
        link.symlink_to("/etc")
    args: dict[str, Any] = {"file": name}
    if cmd == "add-symbol":
        args["symbol"] = "ZZ/USD"
    reply = call(daemon.socket, cmd, args)
    assert reply["ok"] is False and reply["error"]["code"] == "bad_args", reply
    assert name in reply["error"]["message"] and "outside the folders" in reply["error"]["message"]
    _no_secret(reply, "root:", "PATH=", "secret_key_name", "hunter2")
    assert result(daemon.socket, "status")["added_symbols"] == {}


def test_replies_about_a_files_content_quote_no_value_or_key(daemon: DaemonProcess) -> None:
    (daemon.folder / "notes.json").write_bytes(b'{"api_secret_field": "hunter2", "symbol": "hunter3", "quantity": "hunter4"}')
    for cmd in ("validate", "load"):
        reply = call(daemon.socket, cmd, {"file": "notes.json"})
        _no_secret(reply, "api_secret_field", "hunter2", "hunter3", "hunter4")
        assert "notes.json" in orjson.dumps(reply).decode()
    (daemon.folder / "secret_1m.csv").write_text("ts_ms,open,high,low,close,volume\n1640991600000,hunter2,9,12,11,1\n")
    reply = call(daemon.socket, "add-symbol", {"symbol": "ZZ/USD", "file": "secret_1m.csv"})
    assert reply["ok"] is False and "secret_1m.csv" in reply["error"]["message"]
    _no_secret(reply, "hunter2")


def test_control_allowed_paths_opens_a_folder_outside(short_tmp: Path) -> None:
    shared = short_tmp / "shared_candles"
    shared.mkdir()
    (shared / "eth_1m.csv").write_bytes(BTC_1M.read_bytes())
    home = short_tmp / "home"
    home.mkdir()
    daemon = DaemonProcess(write_daemon_config(home, control={"socket": "bot.sock", "allowed_paths": ["../shared_candles"]}))
    try:
        daemon.wait_ready()
        added = result(daemon.socket, "add-symbol", {"symbol": "ETH/USD", "file": "../shared_candles/eth_1m.csv"})
        assert added["timeframe"] == "1m"
        refused = call(daemon.socket, "add-symbol", {"symbol": "XMR/USD", "file": str(BTC_1M)})
        assert refused["error"]["code"] == "bad_args"
    finally:
        assert daemon.stop() == 0


BAD_SYMBOLS = ["NaN", "😀", "  ", "\u0000", "../../etc/passwd", "A" * 60_000, "BTC/", "/USD", "BTC/USD:", "BTC USD/X", "BTC/USD/EUR"]


def test_add_symbol_takes_only_unified_symbols_and_remove_symbol_undoes_it(daemon: DaemonProcess) -> None:
    candles = daemon.folder / "eth_1m.csv"
    candles.write_bytes(BTC_1M.read_bytes())
    for bad in BAD_SYMBOLS:
        reply = call(daemon.socket, "add-symbol", {"symbol": bad, "file": "eth_1m.csv"})
        assert reply["ok"] is False and reply["error"]["code"] == "bad_args", (bad[:20], reply["error"])
    assert result(daemon.socket, "status")["added_symbols"] == {}
    assert call(daemon.socket, "remove-symbol", {"symbol": "BTC/USD"})["error"]["code"] == "invalid_state"  # from the config
    added = result(daemon.socket, "add-symbol", {"symbol": "ETH/USDT:USDT", "file": "eth_1m.csv"})
    assert added["timeframe"] == "1m"
    assert result(daemon.socket, "status")["added_symbols"] == {"ETH/USDT:USDT": {"file": str(candles.resolve()), "timeframe": "1m"}}
    spec = orjson.loads((daemon.folder / "strategies" / "ema_cross.json").read_bytes())
    spec.update({"id": "eth", "symbol": "ETH/USDT:USDT"})
    (daemon.folder / "strategies" / "eth.json").write_bytes(orjson.dumps(spec))
    result(daemon.socket, "load", {"file": "strategies/eth.json", "activate": True})
    used = call(daemon.socket, "remove-symbol", {"symbol": "ETH/USDT:USDT"})
    assert used["error"]["code"] == "invalid_state" and "eth" in used["error"]["message"]
    result(daemon.socket, "unload", {"id": "eth"})
    assert result(daemon.socket, "remove-symbol", {"symbol": "ETH/USDT:USDT"}) == {"symbol": "ETH/USDT:USDT", "removed": True}
    assert result(daemon.socket, "status")["added_symbols"] == {}
    assert result(daemon.socket, "status")["health"] == "ok"
    with sqlite3.connect(daemon.folder / "journal.sqlite") as db:  # a reader needs no lock
        assert db.execute("SELECT key FROM meta WHERE key LIKE 'added_symbol:%'").fetchall() == []
    # Gone from the feed and the journal: it can be added again.
    assert result(daemon.socket, "add-symbol", {"symbol": "ETH/USDT:USDT", "file": "eth_1m.csv"})["timeframe"] == "1m"


def test_journalled_bad_symbols_are_dropped_at_start_with_one_warning_each(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp)
    with Journal(short_tmp / "journal.sqlite") as journal:  # as an older version left it
        for bad in ("NaN", "../../etc/passwd", "A" * 60_000):
            journal.set_meta("added_symbol:" + bad, orjson.dumps({"path": str(BTC_1M), "timeframe": "1m"}).decode())
        journal.set_meta("added_symbol:ETH/USD", orjson.dumps({"path": str(BTC_1M), "timeframe": "1m"}).decode())
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        status = result(daemon.socket, "status")
        assert list(status["added_symbols"]) == ["ETH/USD"]
    finally:
        assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert log.count("dropping the symbol") == 3 and "AAAAAAAA..." in log and "A" * 100 not in log
    with Journal(short_tmp / "journal.sqlite") as journal:
        assert list(journal.meta_with_prefix("added_symbol:")) == ["ETH/USD"]


def test_hostile_arguments_get_bad_args_never_internal(daemon: DaemonProcess) -> None:
    deep = "1"
    for _ in range(1000):
        deep = '{"x":' + deep + "}"
    cases = [
        ('{"id": 1, "cmd": "set", "args": {"id": "ema_cross", "path": "quantity", "value": ' + deep + "}}", "bad_args"),
        (orjson.dumps({"id": 2, "cmd": "validate", "args": {"file": "a" * 5000}}).decode(), "bad_args"),
        (orjson.dumps({"id": 3, "cmd": "add-symbol", "args": {"symbol": "ZZ/USD", "file": "a" * 5000}}).decode(), "bad_args"),
        (orjson.dumps({"id": 4, "cmd": "load", "args": {"file": ("a" * 300 + "/") * 3}}).decode(), "bad_args"),
        (orjson.dumps({"id": 5, "cmd": "set", "args": {"id": "ema_cross", "path": "a..b", "value": 1}}).decode(), "bad_args"),
    ]

    async def go() -> list[dict[str, Any]]:
        async with unix_connect(str(daemon.socket), max_size=None) as ws:
            replies = []
            for message, _ in cases:
                await ws.send(message)
                replies.append(orjson.loads(await ws.recv()))
            return replies

    for (_, code), reply in zip(cases, anyio.run(go)):
        assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert "Traceback" not in daemon.log.read_text()
    assert result(daemon.socket, "status")["health"] == "ok"


def _accept_and_close(path: Path) -> Iterator[None]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        server.close()
        thread.join(5)


def test_ctl_against_a_socket_that_is_not_a_daemon_prints_one_line_and_exits_3(short_tmp: Path) -> None:
    path = short_tmp / "fake.sock"
    for _ in _accept_and_close(path):
        done = subprocess.run([sys.executable, "-m", "bot", "ctl", "--socket", str(path), "status"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 3, done.stderr
        assert "Traceback" not in done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], done.stderr


def test_200_connections_wait_in_the_backlog_while_the_daemon_is_busy(daemon: DaemonProcess) -> None:
    # A stopped process accepts nothing: every connect must find room in the listen backlog
    # (with the old backlog of 100, the 101st was refused).
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    waiting: list[socket.socket] = []
    refused = 0
    try:
        for _ in range(200):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            waiting.append(client)
            try:
                client.connect(str(daemon.socket))
            except BlockingIOError:
                refused += 1
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
        for client in waiting:
            client.close()
    assert refused == 0
    assert result(daemon.socket, "status")["health"] == "ok"


def test_a_burst_of_200_connections_is_served(daemon: DaemonProcess) -> None:
    async def one(index: int, replies: list[dict[str, Any]]) -> None:
        async with unix_connect(str(daemon.socket), open_timeout=60) as ws:
            await ws.send(orjson.dumps({"id": index, "cmd": "status", "args": {}}).decode())
            replies.append(orjson.loads(await ws.recv()))

    async def burst() -> list[dict[str, Any]]:
        replies: list[dict[str, Any]] = []
        async with anyio.create_task_group() as tg:
            for index in range(200):
                tg.start_soon(one, index, replies)
        return replies

    replies = anyio.run(burst)
    assert sorted(r["id"] for r in replies) == list(range(200)) and all(r["ok"] for r in replies)


def test_the_auth_scheme_is_case_insensitive(short_tmp: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    token = "s3cret-token-for-tests-only"
    config = write_daemon_config(short_tmp, control={"socket": "bot.sock", "tcp": {"port": port, "token_env": "BOT_TEST_TOKEN"}})
    daemon = DaemonProcess(config, env={"BOT_TEST_TOKEN": token})
    try:
        daemon.wait_ready()

        async def status(header: str) -> dict[str, Any]:
            async with connect(f"ws://127.0.0.1:{port}", additional_headers={"Authorization": header}) as ws:
                await ws.send(orjson.dumps({"id": 1, "cmd": "status", "args": {}}).decode())
                reply: dict[str, Any] = orjson.loads(await ws.recv())
                return reply

        for header in (f"bearer {token}", f"BEARER {token}", f"Bearer {token}"):
            assert anyio.run(status, header)["ok"] is True
    finally:
        assert daemon.stop() == 0
    assert os.environ.get("BOT_TEST_TOKEN") is None


def test_remove_symbol_while_its_next_candle_waits_to_be_played(short_tmp: Path) -> None:
    daemon = DaemonProcess(write_daemon_config(short_tmp), stepped=True)
    try:
        daemon.wait_ready()
        (short_tmp / "eth_1m.csv").write_bytes(BTC_1M.read_bytes())
        for _ in range(2):  # removed, then added again: no stale candle reaches the new feed
            result(daemon.socket, "add-symbol", {"symbol": "ETH/USD", "file": "eth_1m.csv"})
            daemon.step(1)  # the added symbol's next candle is now the one waiting on the feed
            assert result(daemon.socket, "remove-symbol", {"symbol": "ETH/USD"})["removed"] is True
            daemon.step(3)
        assert daemon.proc.poll() is None
        status = result(daemon.socket, "status")
        assert status["health"] == "ok" and status["added_symbols"] == {}
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.log.read_text()


def test_the_default_run_folder_is_private(short_tmp: Path) -> None:
    config = write_daemon_config(short_tmp, control={"socket": "run/bot.sock"}, journal={"path": "run/journal.sqlite"})
    daemon = DaemonProcess(config, stepped=True)
    try:
        daemon.wait_ready()
        assert (short_tmp / "run").stat().st_mode & 0o777 == 0o700
        assert (short_tmp / "run" / "journal.sqlite").stat().st_mode & 0o777 == 0o600
    finally:
        assert daemon.stop() == 0


def test_strategies_lists_no_file_linked_from_outside(daemon: DaemonProcess) -> None:
    outside = daemon.folder.parent / f"{daemon.folder.name}-outside.json"
    outside.write_bytes(b'{"id": "leak", "mode": "hunter2"}')
    try:
        (daemon.folder / "strategies" / "leak.json").symlink_to(outside)
        (daemon.folder / "strategies" / "odd.json").write_bytes(b'{"id": "odd", "symbol": "BTC/USD", "hunter3": 1}')
        available = result(daemon.socket, "strategies")["available"]
        assert "leak.json" not in available
        assert available["odd.json"]["valid"] is False
        _no_secret(available, "hunter2", "hunter3")
    finally:
        outside.unlink()
