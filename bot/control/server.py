"""The control server: WebSocket over a Unix socket (mode 0600), optionally loopback TCP with a token."""
from __future__ import annotations

import contextlib
import hmac
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import anyio
import orjson
from websockets.asyncio.server import Server, ServerConnection, serve, unix_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from bot.bus import EventStream
from bot.config.models import ControlConfig
from bot.control.commands import STREAM_COMMANDS, Control, call_command, check_event_args
from bot.control.protocol import ControlError, error_reply, ok_reply, parse_request, validate_args
from bot.daemon.state import DaemonState
from bot.errors import BotError
from bot.event_codec import encode_message
from bot.events import EVENT_CLASSES, Event

# Unix socket paths longer than this do not fit in sockaddr_un on Linux.
_MAX_SOCKET_PATH = 100
# Connections waiting to be accepted: a burst of clients must not be dropped in the handshake.
_BACKLOG = 1024
# An events reader whose socket accepts nothing for this long is dropped.
_SEND_TIMEOUT = 5.0


class DaemonAlreadyRunning(BotError):
    """Another live daemon already listens on the control socket."""


class SocketPathError(BotError):
    """The control socket path cannot be used."""


def claim_socket_path(path: Path) -> None:
    """Make `path` free for a new socket: replace a stale one, refuse a live one or a non-socket."""
    if len(str(path)) > _MAX_SOCKET_PATH:
        raise SocketPathError(f"control socket path is too long for a Unix socket ({len(str(path))} > {_MAX_SOCKET_PATH}): {path}")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        # The run folder is the user's alone, as the journal's is.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return
    if not stat.S_ISSOCK(mode):
        raise SocketPathError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # left by a daemon that died: nobody is listening
        return
    finally:
        probe.close()
    raise DaemonAlreadyRunning(f"another bot daemon is running on {path}")


def control_token(config: ControlConfig) -> str | None:
    """The TCP control token from the environment (None without TCP); SocketPathError if unusable."""
    if config.tcp is None:
        return None
    token = os.environ.get(config.tcp.token_env, "")
    if len(token) < 16:
        raise SocketPathError(f"control.tcp needs a token of at least 16 characters in the environment variable {config.tcp.token_env}")
    return token


class ControlServer:
    """Serves control requests; each connection is independent and a bad one never affects the daemon."""

    def __init__(self, state: DaemonState, config: ControlConfig, socket_path: Path, logger: logging.Logger) -> None:
        self._state = state
        self._control = Control.of(state)
        self._config = config
        self.socket_path = socket_path
        self._log = logger
        self._token = control_token(config)

    @property
    def control(self) -> Control:
        """What its commands act on (the HTTP API runs the same commands on it)."""
        return self._control

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[list[Server]]:
        """Listen while the context is open; on exit close connections and remove the socket file."""
        claim_socket_path(self.socket_path)
        servers: list[Server] = []
        previous = os.umask(0o177)  # the socket is created 0600: only this user may steer the bot
        try:
            unix = await unix_serve(self._connection, str(self.socket_path), max_size=self._config.max_message_bytes, backlog=_BACKLOG)
        finally:
            os.umask(previous)
        servers.append(unix)
        os.chmod(self.socket_path, 0o600)
        inode = self.socket_path.stat().st_ino
        try:
            if self._config.tcp is not None:
                tcp = await serve(
                    self._connection,
                    self._config.tcp.host,
                    self._config.tcp.port,
                    max_size=self._config.max_message_bytes,
                    process_request=self._check_token,
                    backlog=_BACKLOG,
                )
                servers.append(tcp)
            yield servers
        finally:
            for server in servers:
                server.close()
            with anyio.CancelScope(shield=True):
                for server in servers:
                    await server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                if self.socket_path.stat().st_ino == inode:
                    self.socket_path.unlink()

    def _check_token(self, connection: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        # The scheme is case-insensitive (RFC 9110 11.1); the token is compared in constant time.
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        if self._token is None or scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._token.encode()):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a control token is required\n")
        return None

    async def _connection(self, ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                request, failure = parse_request(raw)
                if request is None:
                    await ws.send(orjson.dumps(failure).decode())
                    continue
                if request.cmd in STREAM_COMMANDS:
                    await self._stream_events(ws, request.id, request.args)
                    return
                await ws.send(orjson.dumps(await self._answer(request.id, request.cmd, request.args)).decode())
        except ConnectionClosed:
            return

    async def _answer(self, request_id: str | int, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return ok_reply(request_id, await call_command(self._control.for_request(), cmd, args))
        except ControlError as exc:
            return error_reply(request_id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001  a bug in a command must not take the daemon down
            self._log.exception("control command %s failed", cmd)
            return error_reply(request_id, "internal", f"{type(exc).__name__}: {exc}")

    async def _stream_events(self, ws: ServerConnection, request_id: str | int, raw_args: dict[str, Any]) -> None:
        try:
            args = check_event_args(self._control, validate_args(STREAM_COMMANDS["events"], raw_args))
        except ControlError as exc:
            await ws.send(orjson.dumps(error_reply(request_id, exc.code, exc.message)).decode())
            return
        bus = self._state.services.bus
        types = None if args.types is None else [EVENT_CLASSES[name] for name in args.types]
        stream = bus.stream(types, args.strategy_id, maxlen=self._config.event_buffer)
        try:
            await ws.send(orjson.dumps(ok_reply(request_id, {"streaming": True})).decode())
            async with anyio.create_task_group() as tg:

                async def end_when_closed() -> None:
                    # A reader that hangs up is noticed at once, even with no matching event.
                    await ws.wait_closed()
                    tg.cancel_scope.cancel()

                tg.start_soon(end_when_closed)
                await self._forward(ws, request_id, stream)
                tg.cancel_scope.cancel()
        except ConnectionClosed:
            return
        finally:
            bus.close_stream(stream)

    async def _forward(self, ws: ServerConnection, request_id: str | int, stream: EventStream) -> None:
        async for event in stream:
            if stream.dropped:
                # The reader fell a whole buffer behind: drop it rather than slow the bot.
                message = f"reader too slow: {stream.dropped} events dropped; reconnect to resume"
                with anyio.move_on_after(_SEND_TIMEOUT) as scope:
                    await ws.send(orjson.dumps(error_reply(request_id, "slow_reader", message)).decode())
                    await ws.close(code=1008, reason="slow reader")
                if scope.cancelled_caught:
                    ws.transport.abort()
                return
            with anyio.move_on_after(_SEND_TIMEOUT) as scope:
                await ws.send(_event_message(request_id, event))
            if scope.cancelled_caught:
                # Its socket takes nothing: a polite close would wait on the same full buffer.
                ws.transport.abort()
                return


def _event_message(request_id: str | int, event: Event) -> str:
    return '{"id":' + orjson.dumps(request_id).decode() + ',"event":' + encode_message(event).decode() + "}"
