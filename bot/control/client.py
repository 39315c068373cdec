"""`bot ctl`: send one command to the daemon's control socket and print the reply."""
from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

import orjson
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage

from bot.errors import BotError


class DaemonNotRunning(BotError):
    """No daemon answers on the control socket."""


class DaemonUnreachable(BotError):
    """Something answers on the control socket but the conversation failed (not a daemon, or it hung up)."""


# What talking to something that is not (or no longer) a working daemon can raise.
_TALK_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, TimeoutError, InvalidHandshake, InvalidMessage, ConnectionClosed, orjson.JSONDecodeError)


class ControlClient:
    """A connection to the daemon's control socket."""

    def __init__(self, socket_path: Path, max_size: int = 16 * 1024 * 1024) -> None:
        self.socket_path = socket_path
        self._max_size = max_size
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> Self:
        try:
            exists = self.socket_path.exists()
        except OSError as exc:  # a name too long, a folder we may not enter
            raise DaemonUnreachable(f"cannot use the control socket path {str(self.socket_path)[:200]}: {exc.strerror}") from None
        if not exists:
            raise DaemonNotRunning(f"the bot daemon is not running (no control socket at {self.socket_path})")
        try:
            self._ws = await unix_connect(str(self.socket_path), max_size=self._max_size)
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise DaemonNotRunning(f"the bot daemon is not running (nobody listens on {self.socket_path})") from exc
        except _TALK_ERRORS as exc:
            raise DaemonUnreachable(f"cannot talk to the daemon on {self.socket_path}: {_why(exc)}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def call(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return the reply dict (`ok`, and `result` or `error`)."""
        assert self._ws is not None
        request_id = next(self._ids)
        try:
            await self._ws.send(orjson.dumps({"id": request_id, "cmd": cmd, "args": args or {}}).decode())
            reply = orjson.loads(await self._ws.recv())
        except _TALK_ERRORS as exc:
            raise DaemonUnreachable(f"lost the daemon on {self.socket_path}: {_why(exc)}") from None
        if not is_reply(reply):
            raise DaemonUnreachable(f"the daemon on {self.socket_path} sent a reply that is not a control reply")
        checked: dict[str, Any] = reply
        return checked

    async def events(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        """Stream the messages of an `events` request as parsed JSON (undecoded: `bot.control.event_reader` reads them) until the daemon ends it."""
        assert self._ws is not None
        try:
            await self._ws.send(orjson.dumps({"id": "events", "cmd": "events", "args": args}).decode())
            async for raw in self._ws:
                yield orjson.loads(raw)
        except ConnectionClosed as exc:
            if exc.rcvd is None:  # no close frame: the daemon died or the connection broke
                raise DaemonUnreachable(f"lost the daemon on {self.socket_path}: {_why(exc)}") from None
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            raise DaemonUnreachable(f"lost the daemon on {self.socket_path}: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    """One line on what went wrong, without a traceback."""
    if isinstance(exc, ConnectionClosed):
        return "the connection was closed" + (f" ({exc.rcvd.reason or exc.rcvd.code})" if exc.rcvd is not None else "")
    if isinstance(exc, (InvalidHandshake, InvalidMessage, EOFError)):
        return "it does not speak the control protocol (the WebSocket handshake failed)"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def is_reply(reply: Any) -> bool:
    """Whether `reply` has the shape of a control reply (what `bot ctl` reads of it)."""
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return False
    if reply["ok"]:
        return "result" in reply
    error = reply.get("error")
    return isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
