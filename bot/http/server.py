"""The HTTP server inside the daemon's task group: uvicorn serving the API on a socket bound first, the daemon keeping its signals."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable, Generator, Mapping

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.config.http import HttpConfig
from bot.errors import BotError

# Seconds a stop waits for requests under way before the server is cancelled.
STOP_GRACE_S = 2
# Seconds a connection has to send a whole request and have it answered; connections open at once, beyond which new ones are closed.
REQUEST_DEADLINE_S = 30.0
MAX_CONNECTIONS = 256
# Connections the kernel queues before accept (also what asyncio retries per round when accept fails).
LISTEN_BACKLOG = 128
# Bytes the kernel may hold unsent per connection (it doubles the figure for its bookkeeping). Left to autotuning, a reader
# that takes nothing (an event stream in a frozen tab) would hold up to net.ipv4.tcp_wmem's maximum, 4 MiB, before its
# stream stalls and is dropped; responses larger than this wait in the transport's buffer instead (uvicorn's flow control).
SEND_BUFFER = 64 * 1024


class HttpStartError(BotError):
    """The HTTP server cannot start (its address is in use or not this machine's, its token's variable unset): the message says which."""


class _Embedded(uvicorn.Server):
    """uvicorn's Server without its signal handlers (SIGTERM and SIGINT stay the daemon's: a graceful stop of everything) and
    without its 0.1 s tick: it waits for `leave()` instead of waking ten times a second (no Date header, no request limit)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._leave = anyio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the default headers, once
        await self._leave.wait()

    def leave(self) -> None:
        """End the main loop: the server then shuts down (requests under way answered first)."""
        self.should_exit = True
        self._leave.set()


def http_token(config: HttpConfig, environ: Mapping[str, str]) -> str | None:
    """The API's bearer token from the environment variable the config names (None without one); HttpStartError when it is named but unset."""
    if config.token_env is None:
        return None
    token = environ.get(config.token_env, "").strip()
    if not token:
        raise HttpStartError(f"http.token_env names {config.token_env}, which is not set (or empty): set it, or remove token_env")
    return token


class _Guarded(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline per request and a cap on connections: idle or half-sent connections do
    not pile up until the daemon runs out of file descriptors (its control socket with them)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        # The last request answered on this connection (its cycle stays until the next request's replaces it).
        self._answered: object = None
        if len(self.connections) > MAX_CONNECTIONS:
            transport.close()
            return
        self._arm()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            # No Nagle: asyncio sets it only on sockets made with proto IPPROTO_TCP, not on those `bind` made (proto 0); with
            # it, a response's body waited for the ACK of its headers, every request after a connection's first 40 ms late.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        app = self.app

        async def reset_when_given_up(scope: Scope, receive: Receive, send: Send) -> None:
            # This request's cycle, taken now: once its response completes, a pipelined request's takes its place.
            cycle = self.cycle
            await app(scope, receive, send)
            if cycle is not None and cycle.response_started and not cycle.response_complete and not cycle.disconnected:
                # Its app gave up on the response under way (an event stream dropping a reader that took nothing): a close would
                # wait for the reader to take the bytes still buffered, forever for one that never reads, the connection held
                # with them. Reset it, as the control socket does: no linger, so the kernel drops what it holds too and the
                # reader sees the reset. The loop reports the connection lost before uvicorn looks, so it logs nothing.
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.transport.abort()
                await asyncio.sleep(0)

        self.app = reset_when_given_up

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(REQUEST_DEADLINE_S, self._expired)

    def _expired(self) -> None:
        # No request answered within the deadline (nothing sent, headers or body sent slowly, or never finished). A response
        # under way (an event stream) is its app's to bound: the stream drops a reader that takes nothing.
        if self.cycle is not None and self.cycle is not self._answered and self.cycle.response_started:
            return
        if not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        self._answered = self.cycle
        super().on_response_complete()
        # The next request on this connection has its own deadline (idle keep-alive closes sooner: uvicorn's timeout).
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)


class _Forward(logging.Handler):
    """uvicorn's log records through the daemon's logger: its format, its log file."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        self._logger.handle(record)


class _QuietWhenStopping:
    """The app, a request that the stop cut off (its grace over) ending in silence: the daemon is stopping, nothing failed."""

    def __init__(self, app: ASGIApp, stopping: Callable[[], bool]) -> None:
        self._app = app
        self._stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._app(scope, receive, send)
        except asyncio.CancelledError:
            if not self._stopping():
                raise


class HttpServer:
    """Binds the configured address, then serves the app `make_app(port)` builds until `stop`."""

    def __init__(self, config: HttpConfig, make_app: Callable[[int], ASGIApp], logger: logging.Logger) -> None:
        self._config = config
        self._make_app = make_app
        self._log = logger
        self._server: _Embedded | None = None
        self._stopping = False
        # Set once it has stopped serving (or never started): the daemon waits for it, STOP_GRACE_S and a little more at most.
        self.done = anyio.Event()
        self.url: str | None = None

    def bind(self) -> socket.socket:
        """The listening socket (bound before anything is served, so an address in use stops the start with a clear error)."""
        host, port = self._config.host, self._config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise HttpStartError(f"http.listen {self._config.listen}: cannot listen there: {exc.strerror or exc}") from None
        sock.listen(LISTEN_BACKLOG)
        sock.set_inheritable(False)
        return sock

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind, then serve (reported started once listening); return after `stop`."""
        try:
            await self._run(task_status)
        finally:
            self.done.set()

    async def _run(self, task_status: TaskStatus[None]) -> None:
        forward = _Forward(self._log)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            # Its warnings (a malformed request) in the daemon's log; its start and stop lines are the daemon's own.
            uvicorn_log = logging.getLogger(name)
            uvicorn_log.handlers = [forward]
            uvicorn_log.propagate = False
            uvicorn_log.setLevel(logging.WARNING)
        sock = self.bind()
        port = sock.getsockname()[1]
        shown = f"[{self._config.host}]" if ":" in self._config.host else self._config.host
        self.url = f"http://{shown}:{port}"
        config = uvicorn.Config(
            _QuietWhenStopping(self._make_app(port), lambda: self._stopping), lifespan="off", access_log=False, log_config=None, server_header=False, date_header=False,
            timeout_graceful_shutdown=STOP_GRACE_S, ws="none", http=_Guarded, backlog=LISTEN_BACKLOG, proxy_headers=False,
        )
        server = self._server = _Embedded(config)
        self._log.info("http: serving %s (pid %d)", self.url, os.getpid())
        task_status.started()
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()

    def stop(self) -> None:
        """Ask the server to finish: it stops taking connections and ends once requests under way are answered (STOP_GRACE_S at most)."""
        self._stopping = True
        if self._server is not None:
            self._server.leave()
        else:
            self.done.set()
