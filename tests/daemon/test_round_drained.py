"""A round is processed once every strategy's turn on it is settled: the feed position is journalled then, once, and waiters wake.

Real SQLite journal and turns, a real event loop; the journal's writer thread held (a slow disk) so
the candles are taken and their turns' commits still pending.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel

from bot.daemon.delivery import InboxDelivery
from bot.daemon.feed_position import FeedPosition
from bot.daemon.inbox import CandleWork
from bot.daemon.recovery import FEED_POSITION
from bot.journal import Journal
from bot.journal.turns import Turns
from bot.ohlcv import Candle
from tests.daemon.owners import JournallingOwner
from tests.journal.refusals import writer_held

MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE


class _CountingJournal(Journal):
    """The real journal, counting its daemon-fact writes."""

    meta_writes = 0

    def set_meta(self, key: str, value: str) -> None:
        self.meta_writes += 1
        super().set_meta(key, value)


def _unexpected(owner: object, handler: object, exc: Exception) -> None:
    raise AssertionError(f"unexpected failure: {exc!r}")


def test_a_round_is_processed_once_every_turn_is_settled_and_the_feed_position_is_written_once(tmp_path: Path) -> None:
    candle = Candle(T0, 100.0, 101.0, 99.0, 100.5, 1.0)
    close = T0 + MINUTE

    async def main(journal: _CountingJournal) -> tuple[list[bool], int]:
        turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe)
        queued = CandleWork()
        position = FeedPosition(journal, queued)
        owners = [JournallingOwner(journal, f"s{i}") for i in range(5)]
        idle_seen: list[bool] = []
        async with anyio.create_task_group() as tg:
            delivery = InboxDelivery(tg, 100, _unexpected, on_drained=position.processed, queued=queued, turn=turns.turn)
            routes = [delivery.wrap(owner, owner.handle) for owner in owners]
            waiter_done = anyio.Event()

            async def waiter() -> None:
                await delivery.drain()
                idle_seen.append(queued.drained)
                waiter_done.set()

            with writer_held(journal) as release:
                for route in routes:
                    route("BTC/USD", "1m", candle, close)
                position.published(close)
                tg.start_soon(waiter)
                while turns.pending < len(owners):  # every candle taken, every turn's commit waiting
                    await anyio.lowlevel.checkpoint()
                # Taken is not processed: nothing queued, but the turns are not committed yet.
                assert queued.n == 0 and queued.in_hand == len(owners) and not queued.drained
                assert not waiter_done.is_set()
                release()
                await waiter_done.wait()
            await turns.idle()
            tg.cancel_scope.cancel()
        return idle_seen, journal.meta_writes

    with _CountingJournal(tmp_path / "journal.sqlite") as journal:
        idle_seen, meta_writes = anyio.run(main, journal)
        assert journal.get_meta(FEED_POSITION) == str(close)
    assert idle_seen == [True]
    # Once for the round, not once per strategy that finished it.
    assert meta_writes == 1


def test_a_waiter_for_idle_wakes_when_queued_candles_are_cleared_unhandled() -> None:
    async def main() -> bool:
        queued = CandleWork()
        queued.n = 3  # queued for a strategy being unloaded: its inbox is cleared, nobody handles them
        woke = anyio.Event()

        async def wait() -> None:
            await queued.wait_quiet()
            woke.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert not woke.is_set()
            queued.cleared(3)
            await woke.wait()
        return queued.drained

    assert anyio.run(main)


def test_a_lane_waiting_elsewhere_leaves_the_work_quiet_but_not_drained() -> None:
    async def main() -> list[str]:
        work = CandleWork()
        seen: list[str] = []

        async def wait(name: str, waiter: Callable[[], Awaitable[None]]) -> None:
            await waiter()
            seen.append(name)

        work.took()  # a lane holds a candle
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "quiet", work.wait_quiet)
            tg.start_soon(wait, "drained", work.wait_drained)
            await anyio.wait_all_tasks_blocked()
            assert seen == []
            work.waits_elsewhere(True)  # it waits for a worker's decision: reads may run, the round is not over
            await anyio.wait_all_tasks_blocked()
            assert seen == ["quiet"] and work.quiet and not work.drained
            work.waits_elsewhere(False)
            assert work.settled()
        return seen

    assert anyio.run(main) == ["quiet", "drained"]


def test_daily_snapshots_of_many_strategies_handed_over_at_once_are_each_kept(tmp_path: Path) -> None:
    import sqlite3

    from bot.events import PortfolioSnapshot

    snapshots = [(f"s{i}", PortfolioSnapshot(1000.0, 1000.0 + i, 1000.0 + i, 0.0, 0.0, 0.0, 0.0, 1000.0 + i, 0.0, 0.0)) for i in range(300)]
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.snapshot_equities(T0, snapshots)
    with sqlite3.connect(tmp_path / "journal.sqlite") as conn:
        rows = conn.execute("SELECT strategy_id FROM equity_daily").fetchall()
    assert sorted(r[0] for r in rows) == sorted(sid for sid, _ in snapshots)
