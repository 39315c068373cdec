"""`GET /api/v1/events`: the live event stream as server-sent events, filtered as the socket's `events`, a slow reader dropped."""
from __future__ import annotations

import socket
from pathlib import Path

import orjson

from tests.daemon.process import DaemonProcess, short_tmp, write_daemon_config
from tests.http.test_api import SOCKET_TIMEOUT_S, TOKEN, TOKEN_ENV, Served, _port, served

__all__ = ["served", "short_tmp"]


def _open(served: Served, query: str, token: str | None = TOKEN) -> socket.socket:
    """A connection whose request for the stream is sent; the caller reads (or does not)."""
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=SOCKET_TIMEOUT_S)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(f"GET /api/v1/events{query} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n{auth}\r\n".encode())
    return sock


def _read_until(sock: socket.socket, marker: bytes, data: bytes = b"") -> bytes:
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_the_stream_carries_the_events_of_the_candles_stepped_each_a_wire_message(served: Served) -> None:
    sock = _open(served, "?type=candle")
    try:
        head = _read_until(sock, b": streaming\n\n")
        assert head.startswith(b"HTTP/1.1 200") and b"content-type: text/event-stream" in head.lower(), head
        served.daemon.step(3)
        data = _read_until(sock, b"\n\n", head.split(b": streaming\n\n", 1)[1])
        while data.count(b"data: ") < 3:
            data = _read_until(sock, b"\n\n", data + sock.recv(65536))
    finally:
        sock.close()
    events = [orjson.loads(line[len(b"data: "):]) for line in data.split(b"\n") if line.startswith(b"data: ")]
    assert len(events) >= 3 and {e["type"] for e in events} == {"candle"}, events
    assert all("v" in e and "ts_init" in e and "seq" in e for e in events), events[0]


def test_the_stream_needs_the_token_and_refuses_unknown_filters(served: Served) -> None:
    assert served.get("/api/v1/events", auth=None).status == 401
    bad = served.get("/api/v1/events?type=nonsense")
    assert (bad.status, bad.error[0]) == (400, "bad_args") and "unknown event types: nonsense" in bad.error[1], bad
    unknown = served.get("/api/v1/events?strategy=nope")
    assert (unknown.status, unknown.error[0]) == (404, "unknown_strategy"), unknown


def test_a_reader_that_never_reads_is_dropped_and_the_bot_goes_on(short_tmp: Path) -> None:
    # A buffer of 10 events: while this reader takes nothing, thousands of events pass it by; it is dropped, the bot never waits.
    config = write_daemon_config(
        short_tmp, http={"listen": "127.0.0.1:0", "token_env": TOKEN_ENV}, control={"socket": "bot.sock", "event_buffer": 10}
    )
    daemon = DaemonProcess(config, {TOKEN_ENV: TOKEN}, stepped=True)
    try:
        daemon.wait_ready()
        served = Served(daemon, _port(daemon))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(SOCKET_TIMEOUT_S)
        sock.connect(("127.0.0.1", served.port))
        sock.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        try:
            _read_until(sock, b": streaming\n\n")
            before = served.ctl("metrics")["strategies"]
            for _ in range(5):
                daemon.step(300)
            after = served.ctl("metrics")["strategies"]
            assert all(after[sid]["candles"] > before[sid]["candles"] for sid in before), (before, after)
            # Read now: what is there ends with its drop (the slow_reader error, or the connection closed on it), never more waiting.
            data = b""
            while b"slow_reader" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert b"slow_reader" in data, data[-300:]
        finally:
            sock.close()
        assert served.get("/api/v1/status").status == 200
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()[-3000:]
