"""100 open event streams that never read (issue 15): the strategies take every candle, memory stays bounded, each stream is ended by the server.

A browser tab left open on a stream and frozen (or a client that stopped reading) must cost the daemon a
bounded amount per stream, never one growing with the events published, and must not slow the strategies:
the server drops such a reader as the control socket does (bot/http/events.py).
"""
from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

from bot.http.events import SEND_TIMEOUT_S
from bot.http.server import SEND_BUFFER
from bot.ohlcv import timeframe_ms
from tests.daemon.process import DaemonProcess, short_tmp, write_daemon_config
from tests.http.test_api import SOCKET_TIMEOUT_S, TOKEN, TOKEN_ENV, Served, _port

__all__ = ["short_tmp"]

STREAMS = 100
MINUTE_MS = 60_000
# control.event_buffer of this daemon: events queued per stream before the oldest are dropped (the config's default is 10,000;
# a smaller one overflows many times over in the candles a test can step). A step's events (STEP candles, two or three
# events each) stay under it, so each stream's task writes to its socket until the socket's buffers are full, as it
# would with a candle a minute, rather than being dropped at the first burst.
EVENT_BUFFER = 1000
# Asked of each idle socket's receive buffer (Linux doubles it): the smaller it is, the sooner the server's writes back up.
RCVBUF = 4096
# Candles per step: under the daemon's inbox_size (1,000), so no candle is coalesced and every strategy handles each one.
STEP = 200
STEPS = 80
# A stream's ending and the end of each read are awaited as conditions; these only bound a server that never ends one.
ENDED_WITHIN_S = SEND_TIMEOUT_S + SOCKET_TIMEOUT_S
# The daemon's RSS may grow by at most this much over the run (RSS keeps what the allocator took at the peak, so this bounds
# the peak). Per stream, what the server holds while it waits on a reader that takes nothing: its event buffer (EVENT_BUFFER
# references, 8 KiB; the events themselves are the bus's, shared by every stream), the transport's write buffer (uvicorn
# pauses the stream at HIGH_WATER_LIMIT, 64 KiB, plus the one chunk written past it; a bytearray, whose capacity may be
# twice that), the connection's protocol, request and task objects (a few KiB): 256 KiB covers it, times STREAMS is 25 MiB
# (measured: about 14 MiB for the 100). 4 MiB more for what stepping the daemon grows by itself (measured without streams:
# about 1 MiB). Memory that grew with the events published would be STEPS * STEP candles * the bytes a candle's events take
# (measured below) * STREAMS: over ten times the bound.
PER_STREAM_BOUND = 256 * 1024
RSS_BOUND = STREAMS * PER_STREAM_BOUND + 4 * 1024 * 1024


def _rss(pid: int) -> int:
    """The process's resident set (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _request(port: int, query: str = "") -> bytes:
    return f"GET /api/v1/events{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()


def _read_until(sock: socket.socket, marker: bytes, data: bytes = b"") -> bytes:
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended before {marker!r}: {data[-300:]!r}"
        data += chunk
    return data


@pytest.fixture
def served(short_tmp: Path) -> Iterator[Served]:
    """A stepped daemon with HTTP on port 0, the repo's two strategies, control.event_buffer EVENT_BUFFER."""
    config = write_daemon_config(
        short_tmp, http={"listen": "127.0.0.1:0", "token_env": TOKEN_ENV}, control={"socket": "bot.sock", "event_buffer": EVENT_BUFFER}
    )
    daemon = DaemonProcess(config, {TOKEN_ENV: TOKEN}, stepped=True)
    try:
        daemon.wait_ready()
        yield Served(daemon, _port(daemon))
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log.read_text()[-3000:]


def _per_candle(served: Served, candles: int = 50) -> tuple[float, float]:
    """The bytes and the events one candle makes on an unfiltered stream, measured on a reader that reads (lower bounds:
    the events of the last candle's turns may come after its candle event)."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(_request(served.port))
        data = _read_until(sock, b": streaming\n\n").split(b": streaming\n\n", 1)[1]
        served.daemon.step(candles)
        while data.count(b'"type":"candle"') < candles:
            data = _read_until(sock, b"\n\n", data + sock.recv(65536))
    return len(data) / candles, data.count(b"data: ") / candles


def test_a_hundred_streams_that_never_read_are_ended_and_cost_bounded_memory(served: Served) -> None:
    daemon = served.daemon
    per_candle, events_per_candle = _per_candle(served)
    metrics = served.ctl("metrics")["strategies"]
    before = {sid: figures["candles"] for sid, figures in metrics.items()}
    timeframes = {sid: row["config"]["timeframe"] for sid, row in served.ctl("strategies")["loaded"].items()}
    first_close = daemon.last_close
    assert first_close is not None
    rss_before = _rss(daemon.proc.pid)
    socks: list[socket.socket] = []
    try:
        for _ in range(STREAMS):
            sock = socket.socket()
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.settimeout(SOCKET_TIMEOUT_S)
            sock.connect(("127.0.0.1", served.port))
            sock.sendall(_request(served.port))
        rcvbuf = socks[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # Every stream is open (its response started) before the candles come: the server answers while they are.
        assert served.get("/api/v1/status").status == 200
        # The numbers: each stream is sent far more than a stream's buffers on both sides hold (the reader's receive buffer,
        # the server's send buffer, which the kernel doubles, and the transport's high-water mark), and falls its event buffer
        # behind many times over.
        stream_bytes = STEPS * STEP * per_candle
        assert stream_bytes > 10 * (rcvbuf + 2 * SEND_BUFFER + HIGH_WATER_LIMIT), (per_candle, rcvbuf)
        assert STEPS * STEP * events_per_candle > 10 * EVENT_BUFFER, events_per_candle
        published = 0
        for _ in range(STEPS):
            # step returns only once every strategy has processed every candle of it.
            published += daemon.step(STEP).published
            assert served.get("/api/v1/status").status == 200
        assert published == STEPS * STEP and daemon.last_close == first_close + published * MINUTE_MS
        # Each strategy handled every candle of its timeframe that closed in the candles published (the 1m ones aggregated).
        after = served.ctl("metrics")["strategies"]
        closed = {sid: daemon.last_close // timeframe_ms(timeframes[sid]) - first_close // timeframe_ms(timeframes[sid]) for sid in before}
        assert {sid: after[sid]["candles"] - before[sid] for sid in before} == closed, (before, after, timeframes)
        # Each stream is ended by the server while its reader still takes nothing: the connection is reset (nothing it holds is
        # waited on), which the reader's socket shows as a hang-up without a byte read.
        poller = select.poll()
        pending = {sock.fileno(): sock for sock in socks}
        for fd in pending:
            poller.register(fd, select.POLLRDHUP)  # and POLLERR, POLLHUP: a reset, or the server's end of the stream
        waited_ms = int(ENDED_WITHIN_S * 1000)
        while pending:
            ready = poller.poll(waited_ms)
            assert ready, f"{len(pending)} of {STREAMS} idle streams still open after {ENDED_WITHIN_S} s"
            for fd, _ in ready:
                poller.unregister(fd)
                del pending[fd]
        rss_after = _rss(daemon.proc.pid)
        grown = rss_after - rss_before
        unbounded = STREAMS * stream_bytes
        assert grown <= RSS_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB (bound {RSS_BOUND / 2**20:.0f} MiB; all the events sent would be {unbounded / 2**20:.0f} MiB)"
        assert unbounded > 10 * RSS_BOUND, per_candle
        # What each one holds, read now, ends: EOF or the reset, never more waiting.
        for sock in socks:
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        assert served.get("/api/v1/status").status == 200
        # Dropped in silence: no error logged for them (uvicorn's "returned without completing response").
        assert " ERROR " not in daemon.log.read_text(), daemon.log.read_text()[-3000:]
    finally:
        for sock in socks:
            sock.close()
