"""A small synchronous-looking helper around the real control client for tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from bot.control.client import ControlClient


def call(socket: Path, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request on a fresh connection; the reply dict."""

    async def go() -> dict[str, Any]:
        async with ControlClient(socket) as client:
            return await client.call(cmd, args)

    return anyio.run(go)


def result(socket: Path, cmd: str, args: dict[str, Any] | None = None) -> Any:
    """The result of a request that must succeed."""
    reply = call(socket, cmd, args)
    assert reply["ok"], reply
    return reply["result"]
