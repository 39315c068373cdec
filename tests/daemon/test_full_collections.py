"""The garbage collector's full passes run between candle rounds: none while a strategy handles a candle, the thresholds put back after."""
from __future__ import annotations

import gc
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import pytest

from bot.daemon.heap import FullCollections
from bot.daemon.inbox import CandleWork

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def collector_defaults() -> Iterator[tuple[int, int, int]]:
    """The collector's default thresholds for the test, whatever the process had, and those put back after."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    gc.collect()  # no younger passes counted yet: a full pass is not due until the test makes it so
    yield gc.get_threshold()
    gc.set_threshold(*before)


async def test_a_full_pass_waits_for_the_round_and_the_automatic_ones_stay_off_meanwhile() -> None:
    before = gc.get_threshold()
    work = CandleWork()
    work.took()  # a strategy handles a candle
    # Sleeping between its checks (not spinning), so the test can wait until every task is blocked.
    collections = FullCollections(work, every_s=0.001)
    full_passes: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full_passes.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(collections.run)
        await anyio.wait_all_tasks_blocked()
        assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] > 10**8
        gc.callbacks.append(count)
        try:
            # As many younger passes as would have let the automatic collector make a full one, and lots of garbage.
            for _ in range(before[2] + 1):
                gc.collect(1)
            _ = [[object()] for _ in range(50 * before[0])]
            await anyio.wait_all_tasks_blocked()
            assert collections.passes == 0 and full_passes == []  # not during the round
            work.settled()
            with anyio.fail_after(10):
                while collections.passes == 0:
                    await anyio.lowlevel.checkpoint()
            assert full_passes == [1]
        finally:
            gc.callbacks.remove(count)
        tg.cancel_scope.cancel()
    assert gc.get_threshold() == before


async def test_a_daemon_never_quiet_still_gets_its_full_passes() -> None:
    before = gc.get_threshold()
    work = CandleWork()
    work.took()  # a strategy that never catches up
    collections = FullCollections(work, every_s=0.001, waits_s=0.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(collections.run)
        for _ in range(before[2] + 1):
            gc.collect(1)
        with anyio.fail_after(10):
            while collections.passes == 0:
                await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert gc.get_threshold() == before


async def test_two_at_once_leave_the_collector_as_it_was() -> None:
    before = gc.get_threshold()
    scopes: list[anyio.CancelScope] = []

    async def run(collections: FullCollections) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await collections.run()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, FullCollections(CandleWork(), every_s=3600.0))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(run, FullCollections(CandleWork(), every_s=3600.0))  # starts while the first has the full passes off
        await anyio.wait_all_tasks_blocked()
        scopes[0].cancel()  # the first ends first
        await anyio.wait_all_tasks_blocked()
        scopes[1].cancel()
    assert gc.get_threshold() == before
