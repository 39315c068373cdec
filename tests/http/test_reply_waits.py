"""What an HTTP request waits for while a strategy handles a candle: a read waits (once per request, shared by its command and its
reply), a change's reply does not; once the strategies are quiet the read goes on.

The real Starlette application of the API over a real DaemonState (recorded feed, real journal), called as
uvicorn calls it, in the test's loop; the candle work is driven by hand, as the delivery drives it.
"""
from __future__ import annotations

import logging
from typing import Any

import anyio
import orjson
import pytest

from bot.config.http import HttpConfig
from bot.control.commands import Control
from bot.daemon.inbox import CandleWork
from bot.http.api import api_app
from bot.http.prometheus import DaemonMetrics
from tests.daemon.test_operations import Bot, bot  # noqa: F401  (the fixture)

pytestmark = pytest.mark.asyncio
TOKEN = "reply-waits-token"


async def _call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    """One request through the ASGI application: its status and JSON body."""
    sent: list[dict[str, Any]] = []
    request = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if request:
            return request.pop()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path, _, query = path.partition("?")
    headers = [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json")]
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query.encode(), "headers": headers,
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5000), "root_path": ""}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, orjson.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def _app(bot: Bot) -> Any:  # noqa: F811
    control = Control.of(bot.state)
    return api_app(control, HttpConfig(listen="127.0.0.1:8080", token_env="X"), 8080, TOKEN, logging.getLogger("test"), DaemonMetrics(control, "paper"))


async def test_a_change_answers_while_a_strategy_handles_a_candle_and_a_read_waits_for_it(bot: Bot) -> None:  # noqa: F811
    for sid in ("s0", "s1"):
        bot.load(bot.strategy_file(sid, id=sid))
    work = CandleWork()
    bot.state.candle_work = work
    app = _app(bot)
    work.took()  # a strategy handles a candle, for as long as the test says
    with anyio.fail_after(10):
        status, reply = await _call(app, "POST", "/api/v1/strategies/s0/activate")
    assert status == 200 and reply["state"] == "active", reply
    answered: list[tuple[int, Any]] = []

    async def read(path: str) -> None:
        answered.append(await _call(app, "GET", path))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read, "/api/v1/status")
        tg.start_soon(read, "/api/v1/trades?limit=1")  # a small read: it begins after the round too
        await anyio.wait_all_tasks_blocked()
        assert answered == []  # the reads wait for the round
        work.settled()
    assert len(answered) == 2 and all(status == 200 for status, _ in answered), answered
    assert any(set(reply.get("strategies", {})) == {"s0", "s1"} for _, reply in answered), answered
