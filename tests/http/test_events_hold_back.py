"""The event stream holds its events back while the strategies handle candles, and sends them after, in one piece.

A real DaemonState (recorded feed, real journal, its bus) and the real EventStreamResponse, called as
the server calls it; the candle counter is driven by hand, as the delivery drives it.
"""
from __future__ import annotations

from typing import Any

import anyio
import pytest
from starlette.types import Message

from bot.control.commands import Control, EventsArgs
from bot.daemon.inbox import CandleWork
from bot.events import StrategyStateChanged
from bot.http import events
from bot.http.events import EventStreamResponse
from tests.daemon.test_operations import Bot, bot  # noqa: F401  (the fixture)

pytestmark = pytest.mark.asyncio


class _Reader:
    """The server's side of one response: what was sent, and a disconnect to deliver at the end."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.sent = anyio.Event()
        self.gone = anyio.Event()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self.bodies.append(message["body"])
            self.sent.set()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def next_body(self) -> bytes:
        while not self.bodies:
            self.sent = anyio.Event()
            await self.sent.wait()
        return self.bodies.pop(0)


def _publish(bot: Bot, count: int) -> None:  # noqa: F811
    for n in range(count):
        bot.state.services.bus.publish(StrategyStateChanged, 1_700_000_000_000 + n, "s", "active", f"change {n}", None, None)


async def _streaming(bot: Bot, buffer: int, body: Any, work: CandleWork | None = None) -> None:  # noqa: F811
    bot.state.candle_work = CandleWork() if work is None else work
    reader = _Reader()
    response = EventStreamResponse(Control.of(bot.state), EventsArgs(), buffer)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(response, {"type": "http"}, reader.receive, reader.send)
            assert await reader.next_body() == b": streaming\n\n"
            await body(bot.state.candle_work, reader)
            reader.gone.set()


async def test_events_wait_for_the_strategies_candles_then_go_in_one_send(bot: Bot) -> None:  # noqa: F811
    async def body(pending: CandleWork, reader: _Reader) -> None:
        pending.took()  # a strategy handles a candle
        _publish(bot, 5)
        await anyio.wait_all_tasks_blocked()
        assert reader.bodies == []  # held back
        pending.settled()
        sent = await reader.next_body()
        assert sent.count(b"data: ") == 5 and b"change 0" in sent and b"change 4" in sent

    await _streaming(bot, 100, body)


async def test_held_back_events_go_once_a_buffer_full_is_held_and_holding_back_never_drops_a_reader(bot: Bot) -> None:  # noqa: F811
    async def body(pending: CandleWork, reader: _Reader) -> None:
        pending.took()  # the strategies stay busy throughout
        _publish(bot, 15)
        await anyio.wait_all_tasks_blocked()
        assert reader.bodies == []
        # The first is taken already: 14 + 6 buffered is the 20 the reader may fall behind; all of them go in one send.
        _publish(bot, 6)
        sent = await reader.next_body()
        assert sent.count(b"data: ") == 21
        # Held back again (19 of the 20 that wake it), then a burst of the reader's whole buffer in one go: nothing dropped.
        _publish(bot, 19)
        await anyio.wait_all_tasks_blocked()
        _publish(bot, 20)
        sent = b""
        while sent.count(b"data: ") < 39:
            sent += await reader.next_body()
        assert b"slow_reader" not in sent and sent.count(b"data: ") == 39

    await _streaming(bot, 20, body)


async def test_without_candles_in_hand_events_go_at_once(bot: Bot) -> None:  # noqa: F811
    async def body(pending: CandleWork, reader: _Reader) -> None:
        _publish(bot, 1)
        assert (await reader.next_body()).count(b"data: ") == 1

    await _streaming(bot, 100, body)


class _LateRound(CandleWork):
    """A late feed: the next round is released right as a waiter sees the strategies quiet, before it is back from waiting."""

    late = True

    async def wait_quiet(self) -> None:
        await super().wait_quiet()
        if self.late:
            self.late = False
            self.took()


async def test_a_round_released_as_the_strategies_go_quiet_is_handled_before_the_events_are_sent(bot: Bot) -> None:  # noqa: F811
    async def body(pending: CandleWork, reader: _Reader) -> None:
        pending.took()
        _publish(bot, 5)
        await anyio.wait_all_tasks_blocked()
        pending.settled()  # quiet, and the next round comes at once
        await anyio.wait_all_tasks_blocked()
        assert pending.in_hand == 1 and reader.bodies == []
        pending.settled()
        assert (await reader.next_body()).count(b"data: ") == 5

    await _streaming(bot, 100, body, _LateRound())


async def test_a_round_released_as_the_stream_wakes_is_handled_before_the_events_are_sent(bot: Bot) -> None:  # noqa: F811
    async def body(pending: CandleWork, reader: _Reader) -> None:
        async with anyio.create_task_group() as tg:
            # asyncio runs what is ready in order: the stream's wake-up (queued by the publish) before the round's task.
            _publish(bot, 1)  # the stream wakes with the strategies quiet...

            async def release_round() -> None:
                pending.took()  # ...and a round comes while it yields

            tg.start_soon(release_round)
        await anyio.wait_all_tasks_blocked()
        assert pending.in_hand == 1 and reader.bodies == []
        pending.settled()
        assert (await reader.next_body()).count(b"data: ") == 1

    await _streaming(bot, 100, body)


async def test_events_held_back_go_after_hold_back_s_while_the_strategies_stay_busy(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(events, "HOLD_BACK_S", 0.05)

    async def body(pending: CandleWork, reader: _Reader) -> None:
        pending.took()  # busy throughout: a daemon never idle still streams
        _publish(bot, 3)
        assert (await reader.next_body()).count(b"data: ") == 3
        assert pending.in_hand == 1

    await _streaming(bot, 100, body)


async def test_a_stream_closed_while_the_strategies_are_busy_ends_at_once(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(events, "HOLD_BACK_S", 3600.0)  # only the close can end the holding back in time

    async def body(pending: CandleWork, reader: _Reader) -> None:
        pending.took()
        _publish(bot, 2)
        await anyio.wait_all_tasks_blocked()
        bot.state.services.bus.close()  # the daemon stopping: its streams end
        assert (await reader.next_body()).count(b"data: ") == 2  # what was held goes, then the response ends

    await _streaming(bot, 100, body)


async def test_events_that_come_while_the_strategies_are_quiet_go_fifty_a_send(bot: Bot) -> None:  # noqa: F811
    async def body(pending: CandleWork, reader: _Reader) -> None:
        _publish(bot, 120)  # at once, before the stream sends any
        sent = [await reader.next_body() for _ in range(3)]
        assert [part.count(b"data: ") for part in sent] == [50, 50, 20]
        assert b"change 0\"" in sent[0] and b"change 119\"" in sent[2]

    await _streaming(bot, 1_000, body)
