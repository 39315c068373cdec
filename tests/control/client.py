"""A small synchronous-looking helper around the real control client for tests."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from bot.control.client import ControlClient

T = TypeVar("T")


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


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
