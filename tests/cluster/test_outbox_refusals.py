"""What the server refuses: each refused message dropped and counted, health degraded until it takes one again, publishing goes on;
a publish of unknown outcome retried after the duplicate window is not stored twice."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import anyio
import nats
import nats.errors
import nats.js.errors
import pytest

from bot.cluster import streams
from bot.cluster.outbox import Outbox
from bot.cluster.streams import ensure_streams
from tests.cluster.nats_server import NatsServer
from tests.cluster.test_outbox import DEADLINE_S, NAMES, _candle, _outbox, stored_in

LOG = logging.getLogger("bot.test.outbox")


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await anyio.sleep(0.01)


async def _set_max_msg_size(url: str, size: int) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_streams(js, NAMES, 10)
        info = await js.stream_info(NAMES.md)
        await js.update_stream(dataclasses.replace(info.config, max_msg_size=size))
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_a_stream_that_refuses_every_candle_keeps_health_degraded_until_one_is_taken(nats_server: NatsServer) -> None:
    await _set_max_msg_size(nats_server.url, 8)  # an operator's setting, kept by ensure_streams
    outbox = _outbox(nats_server.url, LOG)
    async with asyncio.timeout(DEADLINE_S), anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        for n in range(3):
            outbox.candle("BTC/USD", "1m", _candle(n))
        await _until(lambda: outbox.dropped_candles == 3 and outbox.backlog == 0)
        refused = outbox.status()
        await _set_max_msg_size(nats_server.url, -1)
        outbox.candle("BTC/USD", "1m", _candle(3))
        await _until(lambda: outbox.published == 1)
        taken = outbox.status()
        await outbox.close(5)
    assert (refused["state"], refused["published"], refused["backlog"]) == ("degraded", 0, 0), refused
    assert taken["state"] == "connected", taken


class _FailingFirst:
    """A JetStream context whose first `count` publishes fail with `error` (an answer of no kind the outbox knows)."""

    def __init__(self, js: Any, error: Exception, count: int) -> None:
        self._js, self._error, self._left = js, error, count

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        if self._left:
            self._left -= 1
            raise self._error
        return await self._js.publish(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)


@pytest.mark.asyncio
async def test_an_unforeseen_refusal_drops_that_message_and_publishing_goes_on(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    outbox = _outbox(nats_server.url, LOG)
    connection = outbox._connection
    jetstream = connection.jetstream
    failing = _FailingFirst(None, nats.js.errors.APIError(code=409, description="conflict"), 2)

    def failing_first(timeout: float = 2.0) -> _FailingFirst:
        failing._js = jetstream(timeout)
        return failing

    monkeypatch.setattr(connection, "jetstream", failing_first)
    async with asyncio.timeout(DEADLINE_S), anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        for n in range(3):
            outbox.candle("BTC/USD", "1m", _candle(n))
        await _until(lambda: outbox.published == 1)
        status = outbox.status()
        await outbox.close(5)
    assert (status["state"], status["dropped_candles"], status["backlog"]) == ("connected", 2, 0), status
    assert [m.msg_id.rsplit(":", 1)[1] for m in await stored_in(nats_server.url, NAMES.md)] == ["120000"]


class _LostAck:
    """The first publish is stored but its ack is lost, and the retry comes after the duplicate window."""

    def __init__(self, js: Any, window: float) -> None:
        self._js, self._window, self._first = js, window, True

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        ack = await self._js.publish(*args, **kwargs)
        if self._first:
            self._first = False
            # The server's duplicate window is time: this wait is what the case is, not a synchronisation.
            await asyncio.sleep(self._window + 0.5)
            raise nats.errors.TimeoutError
        return ack

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)


@pytest.mark.asyncio
async def test_a_candle_whose_ack_was_lost_is_not_stored_twice_after_the_duplicate_window(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    window = 1.0
    monkeypatch.setattr(streams, "DUPLICATE_WINDOW_S", window)
    outbox: Outbox = _outbox(nats_server.url, LOG)
    connection = outbox._connection
    jetstream = connection.jetstream
    lost: dict[str, _LostAck] = {}

    def js(timeout: float = 2.0) -> Any:
        if "js" not in lost:
            lost["js"] = _LostAck(jetstream(timeout), window)
        return lost["js"]

    monkeypatch.setattr(connection, "jetstream", js)
    async with asyncio.timeout(DEADLINE_S), anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        outbox.candle("BTC/USD", "1m", _candle(0))
        outbox.candle("BTC/USD", "1m", _candle(1))
        await outbox.close(10)
    assert [m.msg_id.rsplit(":", 1)[1] for m in await stored_in(nats_server.url, NAMES.md)] == ["0", "60000"]
