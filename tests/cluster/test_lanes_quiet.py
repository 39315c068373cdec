"""A lane waiting for its mind's decision over the network leaves the loop quiet: reads do not wait for it, the round is not over.

A real RemoteLanes over a real journal and its turns, a real orchestrator; the mind client answers
when the test tells it (a worker failing over, the server down).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import pytest

from bot.cluster.lanes import RemoteLanes
from bot.control.commands import Control, call_command
from bot.daemon.inbox import CandleWork
from bot.journal.turns import Turns
from bot.ohlcv import Candle
from tests.daemon.test_operations import Bot, bot  # noqa: F401  (the fixture)

pytestmark = pytest.mark.asyncio


class _SlowMinds:
    """A mind client whose decision comes when the test says (None: undecided)."""

    def __init__(self) -> None:
        self.asked = anyio.Event()
        self.answer = anyio.Event()

    async def decide(self, *args: Any) -> Any:
        self.asked.set()
        await self.answer.wait()
        return None

    def forget(self, sid: str) -> None:
        """Nothing kept."""

    def available(self, sid: str) -> bool:
        return True

    def joins(self) -> int:
        return 0

    def move(self, sid: str, worker: str) -> str | None:
        return None

    def release(self, sid: str) -> None:
        """Nothing held."""

    async def close(self) -> None:
        """Nothing open."""

    def status(self) -> dict[str, Any]:
        return {}


async def test_a_decision_awaited_over_the_network_leaves_reads_free_and_the_round_open(bot: Bot) -> None:  # noqa: F811
    bot.load(bot.strategy_file("s0", id="s0"), activate=True)
    orchestrator = bot.state.manager.get("s0")
    work = CandleWork()
    bot.state.candle_work = work
    minds = _SlowMinds()
    turns = Turns(bot.journal, asyncio.get_running_loop().call_soon_threadsafe)
    async with anyio.create_task_group() as tg:
        lanes = RemoteLanes(tg, 100, lambda *args: None, minds, bot.journal, logging.getLogger("test"), turns.turn, 60.0, queued=work)
        route = lanes.wrap(orchestrator, orchestrator.on_candle)
        route("BTC/USD", "1m", Candle(orchestrator.now + 60_000, 1.0, 1.0, 1.0, 1.0, 1.0), orchestrator.now + 120_000)
        await minds.asked.wait()
        # The lane holds its candle (the round is not over: the feed position waits), but on the loop nothing is to do.
        assert work.in_hand == 1 and work.quiet and not work.drained
        # The read's patience would be all it has: it must not be spent here.
        control = Control.of(bot.state).for_request()
        with anyio.fail_after(10):
            status = await call_command(control, "status", {})
        assert "s0" in status["strategies"]
        assert control.slices().waited_s == 0.0
        drained = anyio.Event()

        async def wait_drained() -> None:
            await lanes.drain()
            drained.set()

        tg.start_soon(wait_drained)
        await anyio.wait_all_tasks_blocked()
        assert not drained.is_set()  # a graceful stop still waits for the decision
        minds.answer.set()
        with anyio.fail_after(10):
            await drained.wait()
        tg.cancel_scope.cancel()
