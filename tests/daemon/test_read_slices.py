"""Long reads in slices: between them a read waits while a strategy has a candle queued or in hand, and skips one unloaded meanwhile.

A real DaemonState (recorded feed, real journal) with strategies loaded through the operations; the
candle counter is driven by hand, as the delivery drives it when candles come and turns settle.
"""
from __future__ import annotations

import threading

import anyio
import anyio.to_thread
import pytest

from bot.control.commands import Control, call_command
from bot.daemon import operations
from bot.daemon.inbox import CandleWork
from bot.daemon.read_slices import ReadSlices, each_strategy
from tests.daemon.test_operations import Bot, bot  # noqa: F401  (the fixture)

pytestmark = pytest.mark.asyncio


def _loaded(bot: Bot, count: int) -> list[str]:  # noqa: F811
    ids = [f"s{i}" for i in range(count)]
    for sid in ids:
        bot.load(bot.strategy_file(sid, id=sid), activate=True)
    return ids


async def test_a_read_waits_between_slices_while_a_strategy_has_a_candle_in_hand(bot: Bot) -> None:  # noqa: F811
    ids = _loaded(bot, 3)
    pending = CandleWork()
    pending.took()  # a lane holds a candle: its turn is not settled
    seen: list[str] = []
    done = anyio.Event()

    async def read() -> None:
        # Every item a slice of its own: the read pauses before each.
        async for sid, _ in each_strategy(bot.state.manager, ReadSlices(pending, slice_s=0.0)):
            seen.append(sid)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        assert seen == [] and not done.is_set()
        # Unloaded while the read waits: left out, not an error.
        operations.unload(bot.state, "s1")
        assert pending.settled()
        await done.wait()
    assert seen == [ids[0], ids[2]]


async def test_a_read_whose_patience_is_spent_goes_on_while_the_strategies_are_busy(bot: Bot) -> None:  # noqa: F811
    ids = _loaded(bot, 3)
    pending = CandleWork()
    pending.n = 5  # candles queued that nobody takes here
    seen = [sid async for sid, _ in each_strategy(bot.state.manager, ReadSlices(pending, slice_s=0.0, patience_s=0.0))]
    assert seen == ids


async def test_the_sliced_commands_answer_as_before_with_every_strategy(bot: Bot) -> None:  # noqa: F811
    ids = _loaded(bot, 4)
    bot.state.candle_work = CandleWork()
    control = Control.of(bot.state)
    status = await call_command(control, "status", {})
    assert list(status["strategies"]) == ids and status["health"] == "ok"
    assert list((await call_command(control, "positions", {})).keys()) == ids
    assert list((await call_command(control, "metrics", {}))["strategies"]) == ids
    listing = await call_command(control, "strategies", {})
    assert list(listing["loaded"]) == ids
    assert {f"{sid}.json" for sid in ids} <= set(listing["available"])


async def test_a_round_released_while_a_read_yields_is_handled_before_its_next_slice() -> None:
    work = CandleWork()
    slices = ReadSlices(work, slice_s=0.0)
    sliced = anyio.Event()

    async def release_round() -> None:
        work.took()  # a late feed releases its next round right as the loop gets to it

    async def read() -> None:
        tg.start_soon(release_round)  # runs while the first pause yields
        await slices.pause()
        sliced.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            assert work.in_hand == 1 and not sliced.is_set()  # the slice waits for the round
            work.settled()
            await sliced.wait()


async def test_a_round_begun_while_the_read_waited_elsewhere_ends_its_slice() -> None:
    work = CandleWork()
    slices = ReadSlices(work, slice_s=3600.0)  # a slice that never runs out of time
    await slices.pause()
    thread_may_go = threading.Event()
    back, sliced = anyio.Event(), anyio.Event()

    async def read() -> None:
        # Mid-slice the read waits for something else (a journal read in a worker thread)...
        await anyio.to_thread.run_sync(thread_may_go.wait)
        back.set()
        await slices.pause()
        sliced.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            work.took()  # ...and a round begins meanwhile
            thread_may_go.set()
            await back.wait()
            await anyio.wait_all_tasks_blocked()
            assert not sliced.is_set()  # its slice ended with the round: it waits
            work.settled()
            await sliced.wait()
