"""The daemon's `/api/v1` over HTTP: a real `bot run` process (its feed stepped) serving on a real loopback socket.

Every read is the control socket's result for the same command; every refusal a JSON error with the
socket's code and a fitting status; the token is checked before a body is read; the daemon keeps SIGTERM.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.http.server import MAX_CONNECTIONS
from tests.cli.test_cli import error_lines, flat
from tests.control.client import call, result
from tests.daemon.process import DaemonProcess, short_tmp, write_daemon_config

__all__ = ["short_tmp"]

TOKEN_ENV = "BOT_TEST_HTTP_TOKEN"
TOKEN = "h15-Token_for.tests~0"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# Small, so bodies over it stay small; the config's lowest allowed value is 1024.
MAX_BODY = 2048
# A safety net for a server that never answers: no assertion depends on it.
SOCKET_TIMEOUT_S = 30
SERVING = re.compile(r"http: serving http://127\.0\.0\.1:(\d+) \(pid (\d+)\)")
NO_TOKEN_CONFIGURED = "no API token is configured (http.token_env)"
TOKEN_REQUIRED = "a valid bearer token is required (Authorization: Bearer <token>)"


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP response: its status, headers (names lowercased) and body parsed as JSON (None when empty)."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def error(self) -> tuple[str, str]:
        """The error body's (code, message)."""
        assert set(self.body) == {"error"} and set(self.body["error"]) == {"code", "message"}, self.body
        return self.body["error"]["code"], self.body["error"]["message"]


def _reply(response: http.client.HTTPResponse) -> Reply:
    data = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    if data:
        assert headers.get("content-type") == "application/json", (response.status, headers, data[:200])
    return Reply(response.status, headers, orjson.loads(data) if data else None)


def chunked(*parts: bytes, ended: bool = True) -> bytes:
    """`parts` in the chunked transfer coding, with the last chunk unless not `ended`."""
    coded = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return coded + (b"0\r\n\r\n" if ended else b"")


@dataclass(frozen=True, slots=True)
class Served:
    """A daemon with its HTTP server, the port read from its log line."""

    daemon: DaemonProcess
    port: int

    def connection(self) -> http.client.HTTPConnection:
        """A fresh http.client connection to the server (it sends Host: 127.0.0.1:PORT)."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=SOCKET_TIMEOUT_S)

    def request(self, method: str, path: str, body: bytes = b"", *, auth: str | None = f"Bearer {TOKEN}", headers: dict[str, str] | None = None) -> Reply:
        """One request on a fresh connection, written in one piece; `auth` is the Authorization header (None: none).

        Host is 127.0.0.1:PORT unless `headers` say otherwise; Content-Length is the body's unless
        `headers` give it or Transfer-Encoding (then `body` is sent as it is: chunked, or only a start).
        Written at once, every byte is on the server before it answers: a server that answers
        without reading a body (a refusal) cannot reset the connection over bytes still arriving.
        """
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if auth is not None:
            sent["Authorization"] = auth
        if "Content-Length" not in sent and "Transfer-Encoding" not in sent and (body or method in ("POST", "PUT")):
            sent["Content-Length"] = str(len(body))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in sent.items()) + "\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=SOCKET_TIMEOUT_S) as sock:
            sock.sendall(head.encode("latin-1") + body)
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            return _reply(response)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        """POST `body` as JSON (None: no body)."""
        return self.request("POST", path, b"" if body is None else orjson.dumps(body), **kwargs)

    def ctl(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        """The control socket's result for the same command."""
        return result(self.daemon.socket, cmd, args)


def _port(daemon: DaemonProcess) -> int:
    """The port of the `http: serving ...` line, logged once with this process's pid."""
    lines = SERVING.findall(daemon.log.read_text())
    assert len(lines) == 1, daemon.log.read_text()
    port, pid = lines[0]
    assert int(pid) == daemon.proc.pid
    return int(port)


@contextmanager
def _serving(folder: Path, http: dict[str, Any], env: dict[str, str] | None = None) -> Iterator[Served]:
    """A stepped daemon in `folder` with this `http` section, ready; stopped (exit 0) after."""
    environment = {TOKEN_ENV: TOKEN, **(env or {})}
    daemon = DaemonProcess(write_daemon_config(folder, http=http), environment, stepped=True)
    try:
        daemon.wait_ready()
        yield Served(daemon, _port(daemon))
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log.read_text()[-3000:]


@contextmanager
def _module_daemon(http: dict[str, Any]) -> Iterator[Served]:
    folder = Path(tempfile.mkdtemp(prefix="both-", dir="/tmp"))
    try:
        with _serving(folder, http) as served:
            yield served
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The repo's two strategies, a token, port 0, bodies up to MAX_BODY; stepped until ema_cross holds a position."""
    with _module_daemon({"listen": "127.0.0.1:0", "token_env": TOKEN_ENV, "max_body_bytes": MAX_BODY}) as served:
        _a_position(served)
        yield served


def _a_position(served: Served) -> None:
    """Step the feed until ema_cross holds a position (at once if it does)."""
    served.daemon.step_until(lambda: served.ctl("positions", {"id": "ema_cross"})["ema_cross"]["positions"], "a position of ema_cross", candles=5)


@pytest.fixture(scope="module")
def public() -> Iterator[Served]:
    """public_read with a token: reads open, changes behind the token."""
    with _module_daemon({"listen": "127.0.0.1:0", "token_env": TOKEN_ENV, "public_read": True}) as served:
        yield served


@pytest.fixture(scope="module")
def tokenless() -> Iterator[Served]:
    """No token_env at all."""
    with _module_daemon({"listen": "127.0.0.1:0"}) as served:
        yield served


@pytest.fixture(scope="module")
def tokenless_public() -> Iterator[Served]:
    """No token_env, public_read: reads open, no change possible."""
    with _module_daemon({"listen": "127.0.0.1:0", "public_read": True}) as served:
        yield served


def _strategy_copy(served: Served, sid: str, source: str = "ema_cross") -> str:
    """A copy of a repo strategy file under another id, in the daemon's strategies folder; its name relative to config.json."""
    body = orjson.loads((served.daemon.folder / "strategies" / f"{source}.json").read_bytes())
    body["id"] = sid
    (served.daemon.folder / "strategies" / f"{sid}.json").write_bytes(orjson.dumps(body))
    return f"strategies/{sid}.json"


@contextmanager
def _loaded(served: Served, *sids: str) -> Iterator[None]:
    """Strategies loaded (dormant) through the socket for one test, unloaded through it after."""
    for sid in sids:
        served.ctl("load", {"file": _strategy_copy(served, sid)})
    try:
        yield
    finally:
        for sid in sids:
            if sid in served.ctl("strategies")["loaded"]:
                served.ctl("unload", {"id": sid})


# --- reads are the control socket's results ------------------------------------------------------


def _without_uptime(status: dict[str, Any]) -> dict[str, Any]:
    """A status without uptime_s, the one field that moves between two reads while the stepped feed stands still."""
    assert isinstance(status.pop("uptime_s"), float)
    return status


@pytest.mark.parametrize(
    ("path", "cmd", "args"),
    [
        ("/api/v1/strategies", "strategies", {}),
        ("/api/v1/positions", "positions", {}),
        ("/api/v1/strategies/ema_cross/positions", "positions", {"id": "ema_cross"}),
        ("/api/v1/strategies/rsi_reversion/positions", "positions", {"id": "rsi_reversion"}),
        ("/api/v1/metrics", "metrics", {}),
    ],
)
def test_a_read_is_the_control_result_of_its_command(served: Served, path: str, cmd: str, args: dict[str, Any]) -> None:
    before = served.ctl(cmd, args)
    reply = served.get(path)
    assert reply.status == 200, reply
    assert reply.body == before == served.ctl(cmd, args)


def test_status_is_the_control_status_but_for_uptime(served: Served) -> None:
    _a_position(served)
    before = served.ctl("status")
    reply = served.get("/api/v1/status")
    after = served.ctl("status")
    assert reply.status == 200, reply
    assert before["uptime_s"] <= reply.body["uptime_s"] <= after["uptime_s"]
    assert _without_uptime(reply.body) == _without_uptime(before) == _without_uptime(after)
    assert reply.body["strategies"]["ema_cross"]["positions"] == 1  # the fixture's position, shown the same both ways


def test_positions_show_the_open_position(served: Served) -> None:
    _a_position(served)
    positions = served.get("/api/v1/strategies/ema_cross/positions").body["ema_cross"]["positions"]
    assert [(p["symbol"], p["status"]) for p in positions] == [("BTC/USD", "open")]


@pytest.mark.parametrize("sid", ["ema_cross", "rsi_reversion"])
def test_a_strategy_is_its_status_row_with_its_file_and_config(served: Served, sid: str) -> None:
    row = served.ctl("status")["strategies"][sid]
    loaded = served.ctl("strategies")["loaded"][sid]
    reply = served.get(f"/api/v1/strategies/{sid}")
    assert reply.status == 200, reply
    assert reply.body == {"id": sid, **row, "file": loaded["file"], "config": loaded["config"]}
    assert reply.body["file"] == str(served.daemon.folder / "strategies" / f"{sid}.json")
    # One command behind it, the socket's `strategy`.
    assert reply.body == served.ctl("strategy", {"id": sid})


def test_a_strategy_shows_its_config_as_changed_at_runtime(served: Served) -> None:
    before = served.get("/api/v1/strategies/rsi_reversion").body["config"]["quantity"]
    served.ctl("set", {"id": "rsi_reversion", "path": "quantity", "value": before * 2})
    try:
        assert served.get("/api/v1/strategies/rsi_reversion").body["config"]["quantity"] == before * 2
        assert served.ctl("strategies")["loaded"]["rsi_reversion"]["config"]["quantity"] == before * 2
    finally:
        served.ctl("set", {"id": "rsi_reversion", "path": "quantity", "value": before})


# --- the token -----------------------------------------------------------------------------------


READS = ["/api/v1/status", "/api/v1/strategies", "/api/v1/strategies/ema_cross", "/api/v1/strategies/ema_cross/positions", "/api/v1/positions", "/api/v1/metrics"]


@pytest.mark.parametrize("path", READS)
def test_a_read_without_the_token_is_401_unauthorized(served: Served, path: str) -> None:
    reply = served.get(path, auth=None)
    assert (reply.status, reply.error) == (401, ("unauthorized", TOKEN_REQUIRED))


@pytest.mark.parametrize(
    "auth",
    [
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        TOKEN,
        f"Bearer{TOKEN}",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN.upper()}",
        f"Bearer {TOKEN} {TOKEN}",
    ],
)
def test_a_wrong_scheme_or_token_is_401_unauthorized(served: Served, auth: str) -> None:
    for reply in (served.get("/api/v1/status", auth=auth), served.post("/api/v1/strategies/ema_cross/reload", auth=auth)):
        assert (reply.status, reply.error) == (401, ("unauthorized", TOKEN_REQUIRED))


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_scheme_is_case_insensitive(served: Served, scheme: str) -> None:
    reply = served.get("/api/v1/strategies", auth=f"{scheme} {TOKEN}")
    assert reply.status == 200, reply


def test_a_401_names_the_bearer_challenge(served: Served) -> None:
    reply = served.get("/api/v1/status", auth=None)
    assert reply.status == 401
    assert reply.headers.get("www-authenticate", "").startswith("Bearer")


@pytest.mark.parametrize("path", READS)
def test_public_read_opens_the_reads(public: Served, path: str) -> None:
    reply = public.get(path, auth=None)
    assert reply.status == 200, reply


def test_public_read_status_is_the_control_status(public: Served) -> None:
    assert _without_uptime(public.get("/api/v1/status", auth=None).body) == _without_uptime(public.ctl("status"))


@pytest.mark.parametrize("auth", [None, "Bearer wrong"])
def test_public_read_still_needs_the_token_for_a_change(public: Served, auth: str | None) -> None:
    for reply in (
        public.post("/api/v1/strategies/ema_cross/deactivate", {"policy": "close"}, auth=auth),
        public.post("/api/v1/strategies", {"file": "strategies/ema_cross.json"}, auth=auth),
        public.post("/api/v1/strategies/ema_cross/switch", {"to": "rsi_reversion"}, auth=auth),
    ):
        assert (reply.status, reply.error) == (401, ("unauthorized", TOKEN_REQUIRED))
    assert public.ctl("status")["strategies"]["ema_cross"]["state"] == "active"
    # With the token the change is made.
    reply = public.post("/api/v1/strategies/ema_cross/reload")
    assert (reply.status, reply.body) == (200, {"id": "ema_cross", "changed": []})


@pytest.mark.parametrize("auth", [None, f"Bearer {TOKEN}", "Bearer anything"])
def test_without_token_env_a_read_is_401_saying_no_token_is_configured(tokenless: Served, auth: str | None) -> None:
    reply = tokenless.get("/api/v1/status", auth=auth)
    assert reply.status == 401
    code, message = reply.error
    assert code == "unauthorized" and message == f"{NO_TOKEN_CONFIGURED}: this read needs a token (or http.public_read)"


@pytest.mark.parametrize("auth", [None, f"Bearer {TOKEN}", "Bearer anything"])
def test_without_token_env_a_change_is_401_saying_no_token_is_configured(tokenless: Served, auth: str | None) -> None:
    reply = tokenless.post("/api/v1/strategies/ema_cross/deactivate", {"policy": "close"}, auth=auth)
    assert (reply.status, reply.error) == (401, ("unauthorized", f"{NO_TOKEN_CONFIGURED}: changes are refused"))
    assert tokenless.ctl("status")["strategies"]["ema_cross"]["state"] == "active"


def test_without_token_env_public_read_opens_the_reads_and_no_change(tokenless_public: Served) -> None:
    assert tokenless_public.get("/api/v1/strategies", auth=None).body == tokenless_public.ctl("strategies")
    reply = tokenless_public.post("/api/v1/strategies/ema_cross/deactivate", {}, auth=f"Bearer {TOKEN}")
    assert (reply.status, reply.error) == (401, ("unauthorized", f"{NO_TOKEN_CONFIGURED}: changes are refused"))
    assert tokenless_public.ctl("status")["strategies"]["ema_cross"]["state"] == "active"


# --- the Host header (DNS rebinding) -------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
def test_a_loopback_name_on_its_port_is_accepted(served: Served, host: str) -> None:
    # On loopback any loopback name (its Host names this machine, whatever name resolved): a rebinding page names its own.
    reply = served.get("/api/v1/strategies", headers={"Host": host.format(port=served.port)})
    assert reply.status == 200, reply


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",  # a page of another name resolved to 127.0.0.1 (DNS rebinding)
        "evil.example",
        "127.0.0.1.evil.example:{port}",
        "localhost.evil.example:{port}",
        "localhost:{other}",
        "127.0.0.1:{other}",
        "localhost",  # no port: only port 80 may leave it out
        "127.0.0.1",
        "[::2]:{port}",
        "",
    ],
)
def test_another_host_is_403_forbidden_host(served: Served, host: str) -> None:
    value = host.format(port=served.port, other=served.port + 1 if served.port < 65_535 else served.port - 1)
    for reply in (
        served.get("/api/v1/status", headers={"Host": value}),
        served.get("/api/v1/status", headers={"Host": value}, auth=None),  # the host is checked first
        served.post("/api/v1/strategies/ema_cross/deactivate", {"policy": "close"}, headers={"Host": value}),
    ):
        assert reply.status == 403, reply
        code, message = reply.error
        assert code == "forbidden_host" and f"Host {value!r} is not this server (127.0.0.1:{served.port} or localhost)" == message
    assert served.ctl("status")["strategies"]["ema_cross"]["state"] == "active"


def test_public_read_checks_the_host_too(public: Served) -> None:
    reply = public.get("/api/v1/status", auth=None, headers={"Host": f"evil.example:{public.port}"})
    assert (reply.status, reply.error[0]) == (403, "forbidden_host")


# --- changes -------------------------------------------------------------------------------------


def test_deactivate_with_close_then_activate_changes_the_state(served: Served) -> None:
    daemon = served.daemon
    _a_position(served)
    reply = served.post("/api/v1/strategies/ema_cross/deactivate", {"policy": "close"})
    assert (reply.status, reply.body) == (200, {"id": "ema_cross", "state": "dormant", "policy": "close"})
    row = served.ctl("status")["strategies"]["ema_cross"]
    assert (row["state"], row["policy"]) == ("dormant", "close")
    # The closing order fills on a coming candle; dormant, the strategy opens nothing meanwhile.
    daemon.step_until(lambda: served.ctl("status")["strategies"]["ema_cross"]["positions"] == 0, "the position closed", limit=30)
    assert served.ctl("positions", {"id": "ema_cross"})["ema_cross"] == {"positions": [], "pending_orders": []}
    again = served.post("/api/v1/strategies/ema_cross/deactivate", {"policy": "close"})
    assert (again.status, again.error[0]) == (409, "invalid_state")
    reply = served.post("/api/v1/strategies/ema_cross/activate")
    assert (reply.status, reply.body) == (200, {"id": "ema_cross", "state": "active"})
    assert served.ctl("status")["strategies"]["ema_cross"]["state"] == "active"


def test_set_changes_a_runtime_field_as_the_socket_shows_it(served: Served) -> None:
    old = served.ctl("strategies")["loaded"]["rsi_reversion"]["config"]["quantity"]
    new = old * 2
    try:
        reply = served.post("/api/v1/strategies/rsi_reversion/set", {"path": "quantity", "value": new})
        assert (reply.status, reply.body) == (200, {"id": "rsi_reversion", "changed": ["quantity"], "path": "quantity", "old": old, "new": new})
        assert served.ctl("strategies")["loaded"]["rsi_reversion"]["config"]["quantity"] == new
    finally:
        served.ctl("set", {"id": "rsi_reversion", "path": "quantity", "value": old})


def test_the_path_names_the_strategy_whatever_the_body_says(served: Served) -> None:
    reply = served.post("/api/v1/strategies/no_such_strategy/set", {"id": "rsi_reversion", "path": "quantity", "value": 1})
    assert (reply.status, reply.error[0]) == (404, "unknown_strategy")


def test_load_a_strategy_file_then_unload_it(served: Served) -> None:
    name = _strategy_copy(served, "h15_loaded")
    try:
        reply = served.post("/api/v1/strategies", {"file": name})
        assert (reply.status, reply.body) == (200, {"id": "h15_loaded", "state": "dormant"})
        loaded = served.ctl("strategies")["loaded"]["h15_loaded"]
        assert (loaded["state"], loaded["file"]) == ("dormant", str(served.daemon.folder / name))
        again = served.post("/api/v1/strategies", {"file": name})
        assert (again.status, again.error) == (409, ("invalid_state", "strategy 'h15_loaded' is already loaded"))
        reply = served.post("/api/v1/strategies/h15_loaded/unload")
        assert reply.status == 200, reply
        assert "h15_loaded" not in served.ctl("strategies")["loaded"]
    finally:
        if "h15_loaded" in served.ctl("strategies")["loaded"]:
            served.ctl("unload", {"id": "h15_loaded"})


def test_load_with_activate(served: Served) -> None:
    name = _strategy_copy(served, "h15_active")
    try:
        reply = served.post("/api/v1/strategies", {"file": name, "activate": True})
        assert (reply.status, reply.body) == (200, {"id": "h15_active", "state": "active"})
        assert served.ctl("status")["strategies"]["h15_active"]["state"] == "active"
    finally:
        served.ctl("unload", {"id": "h15_active"})


@pytest.mark.parametrize("name", ["/etc/passwd", "/proc/self/environ", "../outside.json", "strategies/../../outside.json"])
def test_load_outside_the_allowed_folders_is_refused_as_the_socket_refuses_it(served: Served, name: str) -> None:
    reply = served.post("/api/v1/strategies", {"file": name})
    socket_reply = call(served.daemon.socket, "load", {"file": name})
    assert not socket_reply["ok"]
    assert reply.status == 400
    assert reply.body == {"error": socket_reply["error"]}
    code, message = reply.error
    assert code == "bad_args" and name in message and "outside the folders" in message


def test_load_of_a_missing_file_is_invalid_config(served: Served) -> None:
    reply = served.post("/api/v1/strategies", {"file": "strategies/none_such.json"})
    assert (reply.status, reply.error[0]) == (400, "invalid_config")


def test_switch_deactivates_one_and_activates_the_other(served: Served) -> None:
    with _loaded(served, "h15_from", "h15_to"):
        served.ctl("activate", {"id": "h15_from"})
        reply = served.post("/api/v1/strategies/h15_from/switch", {"to": "h15_to", "policy": "close"})
        assert (reply.status, reply.body) == (200, {"from": "h15_from", "to": "h15_to", "policy": "close"})
        rows = served.ctl("status")["strategies"]
        assert (rows["h15_from"]["state"], rows["h15_from"]["policy"], rows["h15_to"]["state"]) == ("dormant", "close", "active")
        again = served.post("/api/v1/strategies/h15_from/switch", {"to": "h15_to"})
        assert (again.status, again.error[0]) == (409, "invalid_state")


def test_switch_without_to_is_bad_args(served: Served) -> None:
    reply = served.post("/api/v1/strategies/ema_cross/switch", {})
    assert (reply.status, reply.error) == (400, ("bad_args", "to: Field required"))


# --- bad requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/strategies/no_such_strategy/deactivate"),
        ("POST", "/api/v1/strategies/no_such_strategy/activate"),
        ("POST", "/api/v1/strategies/no_such_strategy/switch"),
        ("GET", "/api/v1/strategies/no_such_strategy"),
        ("GET", "/api/v1/strategies/no_such_strategy/positions"),
    ],
)
def test_an_unknown_strategy_is_404_unknown_strategy(served: Served, method: str, path: str) -> None:
    body = {"to": "ema_cross"} if path.endswith("/switch") else {}
    reply = served.request(method, path, orjson.dumps(body) if method == "POST" else b"")
    assert reply.status == 404, reply
    code, message = reply.error
    assert code == "unknown_strategy" and "no_such_strategy" in message


@pytest.mark.parametrize("command", ["explode", "status", "positions", "shutdown", "add-symbol"])
def test_an_unknown_strategy_command_is_404_unknown_command(served: Served, command: str) -> None:
    reply = served.post(f"/api/v1/strategies/ema_cross/{command}", {})
    assert reply.status == 404, reply
    code, message = reply.error
    assert code == "unknown_command" and f"unknown strategy command {command!r}" in message


@pytest.mark.parametrize(("method", "path"), [("GET", "/favicon.ico"), ("GET", "/api/v1"), ("GET", "/api/v1/nothing"), ("POST", "/api/v2/status"), ("DELETE", "/x")])
def test_an_unknown_route_is_a_json_404(served: Served, method: str, path: str) -> None:
    reply = served.request(method, path)
    assert (reply.status, reply.error) == (404, ("unknown_command", f"no route {method} {path}"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/strategies/ema_cross/deactivate"),
        ("GET", "/api/v1/strategies/ema_cross/switch"),
        ("POST", "/api/v1/status"),
        ("POST", "/api/v1/metrics"),
        ("DELETE", "/api/v1/strategies/ema_cross"),
        ("PUT", "/api/v1/strategies"),
    ],
)
def test_a_route_with_another_method_is_a_json_405(served: Served, method: str, path: str) -> None:
    reply = served.request(method, path, b"{}" if method in ("POST", "PUT") else b"")
    assert (reply.status, reply.error) == (405, ("bad_request", f"{method} is not allowed on {path}"))
    assert served.ctl("status")["strategies"]["ema_cross"]["state"] == "active"


def test_a_405_says_which_methods_are_allowed(served: Served) -> None:
    reply = served.get("/api/v1/strategies/ema_cross/deactivate")
    assert reply.status == 405
    assert reply.headers.get("allow") == "POST"


@pytest.mark.parametrize("body", [b"{", b"{'policy': 'close'}", b'{"policy": "close",}', b"\xff\xfe", b"policy=close"])
def test_a_body_that_is_not_json_is_400_bad_json(served: Served, body: bytes) -> None:
    reply = served.request("POST", "/api/v1/strategies/ema_cross/deactivate", body)
    assert reply.status == 400, reply
    code, message = reply.error
    assert code == "bad_json" and message.startswith("request body is not JSON")
    assert served.ctl("status")["strategies"]["ema_cross"]["state"] == "active"


@pytest.mark.parametrize("body", [b"[]", b'[{"policy": "close"}]', b"null", b'"close"', b"1"])
def test_a_body_that_is_not_a_json_object_is_400(served: Served, body: bytes) -> None:
    reply = served.request("POST", "/api/v1/strategies/ema_cross/deactivate", body)
    assert (reply.status, reply.error) == (400, ("bad_request", "request body must be a JSON object"))
    assert served.ctl("status")["strategies"]["ema_cross"]["state"] == "active"


@pytest.mark.parametrize(
    ("path", "body", "phrase"),
    [
        ("/api/v1/strategies/ema_cross/deactivate", {"policy": "sideways"}, "policy: Input should be 'manage', 'close' or 'freeze'"),
        ("/api/v1/strategies/ema_cross/deactivate", {"policy": 1}, "policy"),
        ("/api/v1/strategies/ema_cross/deactivate", {"policy": "close", "force": True}, "force: Extra inputs are not permitted"),
        ("/api/v1/strategies/ema_cross/set", {"path": "quantity", "value": "lots"}, "quantity: a string is not a number"),
        ("/api/v1/strategies/ema_cross/set", {"path": "no such path!", "value": 1}, "path"),
        ("/api/v1/strategies/ema_cross/switch", {"to": ["rsi_reversion"]}, "to"),
        ("/api/v1/strategies", {"file": 7}, "file"),
        ("/api/v1/strategies", {}, "file: Field required"),
        ("/api/v1/strategies", {"file": "strategies/ema_cross.json", "activate": "soon"}, "activate"),
    ],
)
def test_wrong_arguments_are_400_bad_args(served: Served, path: str, body: dict[str, Any], phrase: str) -> None:
    before = served.ctl("strategies")
    reply = served.post(path, body)
    assert reply.status == 400, reply
    code, message = reply.error
    assert code == "bad_args" and phrase in message, message
    assert served.ctl("strategies") == before


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ ")


def _malformed(served: Served) -> http.client.HTTPResponse:
    """A request h11 refuses before the app sees it (a Content-Length with a sign): uvicorn's own plain-text 400."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(f"POST {RELOAD} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nContent-Length: +2\r\n\r\n{{}}".encode())
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        response.read()
        return response


def test_a_malformed_request_is_a_400_and_the_server_serves_on(served: Served) -> None:
    assert _malformed(served).status == 400
    assert served.get("/api/v1/strategies").body == served.ctl("strategies")


def test_what_the_server_logs_of_a_malformed_request_is_in_the_daemon_log_format(served: Served) -> None:
    assert _malformed(served).status == 400  # logged before the 400 is sent
    bare = [line for line in served.daemon.log.read_text().splitlines() if not LOG_LINE.match(line)]
    assert bare == []


# --- body limits ---------------------------------------------------------------------------------

RELOAD = "/api/v1/strategies/ema_cross/reload"


def _padded(size: int) -> bytes:
    """`{}` padded with spaces to `size` bytes: a valid empty argument object of exactly that length."""
    return b"{}" + b" " * (size - 2)


CHUNKED = {"Transfer-Encoding": "chunked"}
# Far more than any server would wait for: a server that waited for the rest of such a body would never answer
# (the test would then fail on the socket's timeout); every one of these requests is answered at once.
HUGE = {"Content-Length": str(10**12)}


def test_a_body_of_max_body_bytes_is_taken(served: Served) -> None:
    reply = served.request("POST", RELOAD, _padded(MAX_BODY))
    assert (reply.status, reply.body) == (200, {"id": "ema_cross", "changed": []})


def test_a_chunked_body_of_max_body_bytes_is_taken(served: Served) -> None:
    body = _padded(MAX_BODY)
    reply = served.request("POST", RELOAD, chunked(body[:1000], body[1000:]), headers=CHUNKED)
    assert (reply.status, reply.body) == (200, {"id": "ema_cross", "changed": []})


def test_a_body_over_max_body_bytes_is_413_too_large(served: Served) -> None:
    reply = served.request("POST", RELOAD, _padded(MAX_BODY + 1))
    assert (reply.status, reply.error) == (413, ("too_large", f"request body of {MAX_BODY + 1} bytes: at most {MAX_BODY} are taken (http.max_body_bytes)"))


def test_a_declared_length_over_max_body_bytes_is_413_before_the_body_is_read(served: Served) -> None:
    reply = served.request("POST", RELOAD, b"{}", headers=HUGE)
    assert (reply.status, reply.error) == (413, ("too_large", f"request body of {10**12} bytes: at most {MAX_BODY} are taken (http.max_body_bytes)"))


def test_a_chunked_body_over_max_body_bytes_is_413_too_large(served: Served) -> None:
    body = _padded(MAX_BODY + 1)
    reply = served.request("POST", RELOAD, chunked(body[:1000], body[1000:]), headers=CHUNKED)
    assert (reply.status, reply.error) == (413, ("too_large", f"request body over {MAX_BODY} bytes (http.max_body_bytes)"))


def test_a_chunked_body_is_413_once_over_max_body_bytes_without_waiting_for_its_end(served: Served) -> None:
    reply = served.request("POST", RELOAD, chunked(*[b" " * 1024] * 3, ended=False), headers=CHUNKED)
    assert (reply.status, reply.error) == (413, ("too_large", f"request body over {MAX_BODY} bytes (http.max_body_bytes)"))


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic x"])
@pytest.mark.parametrize("path", ["/api/v1/strategies", "/api/v1/strategies/ema_cross/deactivate", "/api/v1/strategies/ema_cross/switch"])
def test_a_change_without_the_token_is_401_before_its_huge_body_is_read(served: Served, auth: str | None, path: str) -> None:
    start = b'{"policy": "close", "to": "rsi_reversion", "file": "x'
    reply = served.request("POST", path, start, auth=auth, headers=HUGE)
    assert (reply.status, reply.error) == (401, ("unauthorized", TOKEN_REQUIRED))
    unended = served.request("POST", path, chunked(start, b" " * 1024, ended=False), auth=auth, headers=CHUNKED)
    assert (unended.status, unended.error) == (401, ("unauthorized", TOKEN_REQUIRED))
    assert served.ctl("status")["strategies"]["ema_cross"]["state"] == "active"


def test_a_change_to_another_host_is_403_before_its_body_is_read(served: Served) -> None:
    reply = served.request("POST", RELOAD, b"{", headers={"Host": "evil.example", **HUGE})
    assert (reply.status, reply.error[0]) == (403, "forbidden_host")


def test_the_daemon_serves_on_after_the_refusals(served: Served) -> None:
    assert served.request("POST", RELOAD, b"{", auth=None, headers=HUGE).status == 401
    assert served.request("POST", RELOAD, b"{", headers=HUGE).status == 413
    assert served.get("/api/v1/strategies").body == served.ctl("strategies")


# --- the daemon's lifetime -----------------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port and a server can bind it again (with SO_REUSEADDR, as the daemon binds)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen(1)
    return True


@contextmanager
def _http_daemon(folder: Path) -> Iterator[Served]:
    """A stepped daemon with http on port 0 and a token; the test stops it."""
    daemon = DaemonProcess(write_daemon_config(folder, http={"listen": "127.0.0.1:0", "token_env": TOKEN_ENV}), {TOKEN_ENV: TOKEN}, stepped=True)
    try:
        daemon.wait_ready()
        yield Served(daemon, _port(daemon))
    finally:
        daemon.stop(signal.SIGKILL)  # a no-op once the test stopped it


def _stopped(served: Served) -> str:
    """SIGTERM the daemon; its log, once it exited 0 with `stopped` (the server's port free again, the control socket gone)."""
    code = served.daemon.stop(signal.SIGTERM)
    log = served.daemon.log.read_text()
    assert code == 0, log
    assert "INFO received SIGTERM" in log and "INFO stopped" in log, log
    assert _port_is_free(served.port)
    assert not served.daemon.socket.exists()
    return log


def test_sigterm_stops_the_daemon_and_its_server_gracefully(short_tmp: Path) -> None:
    with _http_daemon(short_tmp) as served:
        assert served.get("/api/v1/status").status == 200
        idle = served.connection()  # a kept-alive connection, idle at the stop
        try:
            idle.request("GET", "/api/v1/strategies", headers=BEARER)
            assert _reply(idle.getresponse()).status == 200
            log = _stopped(served)
        finally:
            idle.close()
    assert log.splitlines()[-1].endswith("INFO stopped"), log
    assert "Traceback" not in log, log


def _stalled(served: Served) -> http.client.HTTPConnection:
    """A change whose body never comes, under way in the server (waiting for its body) until the daemon stops.

    Its head and first byte are on the server before another connection opens, so the server has
    taken them (its request task started) by the time it answers a request on that later connection:
    the read after it is the condition awaited.
    """
    stalled = served.connection()
    stalled.putrequest("POST", RELOAD)
    stalled.putheader("Authorization", f"Bearer {TOKEN}")
    stalled.putheader("Content-Length", "100")
    stalled.endheaders(b"{")
    assert served.get("/api/v1/strategies").status == 200
    return stalled


def test_sigterm_stops_the_daemon_with_a_request_under_way(short_tmp: Path) -> None:
    with _http_daemon(short_tmp) as served:
        stalled = _stalled(served)
        try:
            _stopped(served)
        finally:
            stalled.close()


def test_sigterm_with_a_request_under_way_logs_no_traceback(short_tmp: Path) -> None:
    with _http_daemon(short_tmp) as served:
        stalled = _stalled(served)
        try:
            log = _stopped(served)
        finally:
            stalled.close()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log
    assert log.splitlines()[-1].endswith("INFO stopped"), log


def test_a_port_in_use_ends_bot_run_with_a_clear_error_naming_http_listen(short_tmp: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = write_daemon_config(short_tmp, http={"listen": f"127.0.0.1:{port}"})
        run = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], cwd=short_tmp, capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    assert error_lines(run.stderr) == [f"error: http.listen 127.0.0.1:{port}: cannot listen there: Address already in use"], flat(output)
    assert "Traceback" not in output, output
    assert not (short_tmp / "bot.sock").exists()


@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_bot_run_refuses_a_token_env_that_is_not_set_before_touching_the_journal(short_tmp: Path, value: str | None) -> None:
    config = write_daemon_config(short_tmp, http={"listen": "127.0.0.1:0", "token_env": TOKEN_ENV})
    env = {name: v for name, v in os.environ.items() if name != TOKEN_ENV}
    if value is not None:
        env[TOKEN_ENV] = value
    run = subprocess.run([sys.executable, "-m", "bot", "run", "--config", "config.json"], cwd=short_tmp, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert error_lines(run.stderr) == [
        f"error: config.json: http.token_env names {TOKEN_ENV}, which is not set (or empty): set it, or remove token_env"
    ], flat(run.stderr)
    assert "Traceback" not in run.stderr
    assert sorted(path.name for path in short_tmp.iterdir()) == ["config.json", "strategies"]
    assert config.exists()


def test_connections_beyond_the_cap_are_closed_at_once_and_the_control_socket_still_answers(served: Served) -> None:
    # Idle connections (nothing sent) up to the cap; each one after it is closed by the server at once.
    held = [socket.create_connection(("127.0.0.1", served.port), timeout=SOCKET_TIMEOUT_S) for _ in range(MAX_CONNECTIONS)]
    try:
        # The cap holds connections the server has taken: a request answered on one of them proves the others are taken too.
        extra = socket.create_connection(("127.0.0.1", served.port), timeout=SOCKET_TIMEOUT_S)
        try:
            assert extra.recv(1) == b"", "a connection beyond the cap was kept open"
        finally:
            extra.close()
        assert served.ctl("status")["health"] in ("ok", "degraded")
    finally:
        for sock in held:
            sock.close()
    # Once they are gone the server serves again.
    deadline = time.monotonic() + SOCKET_TIMEOUT_S
    while True:
        try:
            if served.get("/api/v1/strategies").status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not serve again after the idle connections closed"
        time.sleep(0.05)


def test_a_body_nested_deeper_than_the_sockets_limit_is_refused(served: Served) -> None:
    value: Any = 1
    for _ in range(40):
        value = {"a": value}
    reply = served.request("POST", "/api/v1/strategies/ema_cross/set", orjson.dumps({"path": "params.x", "value": value}))
    assert reply.status == 400 and reply.body["error"]["code"] == "bad_args" and "levels deep" in reply.body["error"]["message"], reply


def test_a_trailing_slash_is_a_json_404_not_a_redirect(served: Served) -> None:
    # No route has it: the JSON 404 whatever the Host, never a redirect to the host the request named.
    for host in ("evil.example", f"127.0.0.1:{served.port}"):
        reply = served.get("/api/v1/status/", headers={"Host": host})
        assert (reply.status, reply.error[0]) == (404, "unknown_command") and "location" not in reply.headers, reply
