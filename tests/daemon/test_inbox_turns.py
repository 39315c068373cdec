"""InboxDelivery with the daemon's turns: a graceful stop opens no turn after it, and a failure after a commit stays the strategy's.

Real SQLite journals, the journal's writer thread held (a slow disk) where a commit must be pending,
a real event loop; the owner records what it is asked to do.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import anyio.lowlevel

from bot.daemon.delivery import InboxDelivery
from bot.journal import Journal
from bot.journal.turns import Turns
from bot.ohlcv import Candle
from tests.daemon.owners import JournallingOwner
from tests.journal.refusals import writer_held

MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE


def _candle(ts: int) -> Candle:
    return Candle(ts, 100.0, 101.0, 99.0, 100.5, 1.0)


def test_a_graceful_stop_drops_what_is_queued_opens_no_turn_after_it_and_does_not_report_the_dropped_candles_processed(tmp_path: Path) -> None:
    drained: list[int] = []

    async def main(journal: Journal) -> tuple[list[int], int]:
        turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
        owner = JournallingOwner(journal)
        async with anyio.create_task_group() as tg:
            delivery = InboxDelivery(tg, 100, _unexpected, on_drained=lambda: drained.append(len(owner.handled)), turn=turns.turn)
            enqueue = delivery.wrap(owner, owner.handle)
            with writer_held(journal) as release:
                for n in range(5):
                    enqueue("BTC/USD", "1m", _candle(T0 + n * MINUTE), T0 + (n + 1) * MINUTE)
                while turns.pending == 0:  # the first candle's turn waits for its commit; four are queued
                    await anyio.lowlevel.checkpoint()
                stopping = anyio.Event()

                async def stop() -> None:
                    await delivery.stop()
                    stopping.set()

                tg.start_soon(stop)
                await anyio.lowlevel.checkpoint()
                release()
                await stopping.wait()
            await turns.idle()
        return owner.handled, turns.pending

    with Journal(tmp_path / "journal.sqlite") as journal:
        handled, pending = anyio.run(main, journal)
    assert handled == [T0] and pending == 0
    # Never "everything processed": the four dropped candles are played again after a restart.
    assert drained == []


def test_a_send_that_fails_after_its_turn_committed_is_the_strategys_failure_and_its_next_candles_are_still_handled(tmp_path: Path) -> None:
    failures: list[Exception] = []

    async def main(journal: Journal) -> list[int]:
        turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
        owner = JournallingOwner(journal)

        def handle(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
            owner.handle(symbol, timeframe, candle, ts)
            if candle.ts == T0:
                turns.after_commit(_gateway_gone, _nothing)  # an order whose send fails once the turn is committed

        async with anyio.create_task_group() as tg:
            delivery = InboxDelivery(tg, 100, lambda owner, handler, exc: failures.append(exc), turn=turns.turn)
            enqueue = delivery.wrap(owner, handle)
            for n in range(3):
                enqueue("BTC/USD", "1m", _candle(T0 + n * MINUTE), T0 + (n + 1) * MINUTE)
            await delivery.drain()
            await turns.idle()
            delivery.close_all()
        return owner.handled

    with Journal(tmp_path / "journal.sqlite") as journal:
        handled = anyio.run(main, journal)
    assert handled == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert [str(exc) for exc in failures] == ["the gateway's task group has ended"]


def _gateway_gone() -> None:
    raise RuntimeError("the gateway's task group has ended")


def _nothing() -> None:
    """Nothing to discard."""


def _unexpected(owner: object, handler: object, exc: Exception) -> None:
    raise AssertionError(f"unexpected strategy error: {exc!r}")


def test_after_a_graceful_stop_a_new_route_drops_its_candles_and_opens_no_lane(tmp_path: Path) -> None:
    """A strategy failed during the stop gets a protecting route: it must not start a lane that opens turns."""

    async def main(journal: Journal) -> tuple[list[int], dict[str, int]]:
        turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
        owner = JournallingOwner(journal)
        async with anyio.create_task_group() as tg:
            delivery = InboxDelivery(tg, 100, _unexpected, turn=turns.turn)
            await delivery.stop()
            enqueue = delivery.wrap(owner, owner.handle)
            enqueue("BTC/USD", "1m", _candle(T0), T0 + MINUTE)
            await anyio.lowlevel.checkpoint()
            stats = delivery.stats(owner)
        return owner.handled, stats

    with Journal(tmp_path / "journal.sqlite") as journal:
        handled, stats = anyio.run(main, journal)
    assert handled == [] and stats == {"inbox_depth": 0, "overruns": 0, "coalesced": 0, "processed": 0}
