"""Per-strategy inboxes: bounded, coalescing, and a slow strategy does not hold the others back."""
from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest

from bot.config.models import BotConfig
from bot.daemon.delivery import InboxDelivery
from bot.daemon.inbox import CandleInbox
from bot.events import PositionClosed, StrategyFault, TradeRecord
from bot.kernel import Seams, build_services
from bot.log import BotLogger
from bot.ohlcv import Candle
from bot.strategy.factory import OrchestratorFactory
from bot.strategy.manager import StrategyManager
from bot.trading.actions import OpenPosition
from tests.support import declarative, strategy


def test_a_full_inbox_coalesces_to_the_newest_candle_per_stream() -> None:
    inbox: CandleInbox[int] = CandleInbox(4)
    for i, key in enumerate([("A", "1m"), ("B", "1m"), ("A", "1m"), ("A", "5m")]):
        inbox.put(key, i)
    inbox.put(("B", "1m"), 4)  # full: coalesce, then append
    assert len(inbox) == 3 and inbox.overruns == 1 and inbox.coalesced == 2
    drained = []

    async def take() -> None:
        while len(inbox):
            drained.append(await inbox.get())

    anyio.run(take)
    # Newest per stream, in the order those newest arrived: A/1m=2, A/5m=3, then B/1m=4.
    assert drained == [2, 3, 4]


def test_more_streams_than_room_keeps_one_candle_per_stream() -> None:
    inbox: CandleInbox[int] = CandleInbox(2)
    for i in range(5):
        inbox.put((f"S{i}", "1m"), i)
    # Dropping a whole stream would hide its prices: every stream keeps its candle.
    assert len(inbox) == 5 and inbox.overruns >= 1 and inbox.coalesced == 0


def test_closed_inbox_ends_the_consumer_after_draining() -> None:
    inbox: CandleInbox[int] = CandleInbox(10)
    inbox.put(("A", "1m"), 1)
    inbox.close()
    inbox.put(("A", "1m"), 2)  # ignored once closed

    async def take() -> list[int]:
        got = [await inbox.get()]
        with pytest.raises(anyio.EndOfStream):
            await inbox.get()
        return got

    assert anyio.run(take) == [1]


def test_a_slow_strategy_is_coalesced_while_a_fast_one_sees_every_candle(btc_candles: list[Candle]) -> None:
    candles = btc_candles[:300]
    services = build_services(BotConfig(), BotLogger.to_stderr(level=60, name="bot.tests.inbox"), Seams(isolate_subscribers=False))
    services.hub.add_feed("BTC/USD", "1m")
    slow_handled = 0
    # For each candle the fast strategy processed: how many slow candles were handled between its
    # publication and then (what it waited for, counted in candles rather than wall time).
    waited: list[int] = []

    async def main() -> tuple[int, int, dict[str, int], dict[str, int]]:
        async with anyio.create_task_group() as tg:
            manager: StrategyManager

            def on_error(owner: object, handler: object, exc: Exception) -> None:
                raise AssertionError(f"unexpected strategy error: {exc}")

            delivery = InboxDelivery(tg, 16, on_error)
            manager = StrategyManager(services, OrchestratorFactory(services), delivery)
            manager.load(strategy(id="slow"))
            manager.load(strategy(id="fast"))
            slow, fast = manager.get("slow"), manager.get("fast")
            slow_on_candle, fast_on_candle = slow.on_candle, fast.on_candle
            published: dict[int, int] = {}

            def sluggish(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
                nonlocal slow_handled
                time.sleep(0.004)  # a strategy doing 4 ms of work per candle: longer than its time slice
                slow_on_candle(symbol, timeframe, candle, ts)
                slow_handled += 1

            def timed(symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
                waited.append(slow_handled - published[candle.ts])
                fast_on_candle(symbol, timeframe, candle, ts)

            slow.handler_for = lambda symbol, timeframe: sluggish  # type: ignore[method-assign]
            fast.handler_for = lambda symbol, timeframe: timed  # type: ignore[method-assign]
            manager.activate("slow")
            manager.activate("fast")
            # Candles come in bursts of 10 (as after a reconnect, or many streams closing at once),
            # the next as soon as the fast strategy is through the last: faster than the slow one.
            for start in range(0, len(candles), 10):
                burst = candles[start : start + 10]
                for candle in burst:
                    published[candle.ts] = slow_handled
                    services.hub.ingest("BTC/USD", candle)
                while fast.metrics.candles < start + len(burst):
                    await anyio.lowlevel.checkpoint()
            await delivery.drain()
            result = (slow.metrics.candles, fast.metrics.candles, delivery.stats(slow), delivery.stats(fast))
            delivery.close_all()
        return result

    slow_count, fast_count, slow_stats, fast_stats = anyio.run(main)
    assert fast_count == len(candles) and fast_stats["overruns"] == 0
    assert slow_count < len(candles) and slow_stats["overruns"] > 0 and slow_stats["coalesced"] > 0
    # The fast strategy waits for at most the slow one's current candle (one; a few more only if
    # the machine stalls the fast one past its own time slice mid-burst), never its backlog: with
    # one handler after the other it would wait for the slow one's 10 candles of each burst.
    assert len(waited) == len(candles) and max(waited) <= 3, waited


def test_a_strategy_failing_in_its_inbox_task_fails_alone_and_keeps_its_stops(btc_candles: list[Candle]) -> None:
    candles = btc_candles[:400]
    services = build_services(BotConfig(), BotLogger.to_stderr(level=60, name="bot.tests.inbox2"), Seams(isolate_subscribers=False))
    services.hub.add_feed("BTC/USD", "1m")
    events: list[str] = []
    services.bus.subscribe(lambda e: events.append(f"{e.strategy_id}:{e.type}:{e.trade.exit_reason if isinstance(e, PositionClosed) else ''}"), types=[PositionClosed, StrategyFault])

    async def main() -> tuple[str, str | None, int, int]:
        async with anyio.create_task_group() as tg:
            # The inbox gets the manager's guarded seam at construction: no hook set afterwards.
            manager = StrategyManager(services, OrchestratorFactory(services), delivery_for=lambda on_error: InboxDelivery(tg, 100, on_error))
            delivery = manager.delivery
            assert isinstance(delivery, InboxDelivery)
            doomed = manager.load(
                strategy(id="doomed", exit_threshold=None, analyzers=[{"type": "ema_trend", "params": {"period": 5}}], exits={"stop_loss_pct": 0.3})
            )
            healthy = manager.load(strategy(id="healthy"))
            manager.activate("doomed")
            manager.activate("healthy")
            for candle in candles[:40]:
                services.hub.ingest("BTC/USD", candle)
                await anyio.lowlevel.checkpoint()
            await delivery.drain()
            assert doomed.positions.positions, "ema_trend should hold a position by now"

            def explode(candle: Candle) -> float:
                raise RuntimeError("strategy bug")

            declarative(doomed).analyzers.score = explode
            for candle in candles[40:]:
                services.hub.ingest("BTC/USD", candle)
                await anyio.lowlevel.checkpoint()
            await delivery.drain()
            delivery.close_all()
        return doomed.state, doomed.last_error, doomed.metrics.errors, healthy.metrics.candles

    state, error, errors, healthy_candles = anyio.run(main)
    assert state == "failed" and "strategy bug" in (error or "") and errors == 1
    assert healthy_candles == len(candles)
    assert events.count("doomed:strategy_error:") == 1
    assert "doomed:position_closed:stop_loss" in events  # its stop still fired after the failure


def test_skipped_candles_still_reach_the_positions_in_order(btc_candles: list[Candle]) -> None:
    """A coalesced strategy decides on the newest candle, but a stop inside a skipped one fires, gap included."""
    services = build_services(BotConfig(), BotLogger.to_stderr(level=60, name="bot.tests.inbox3"), Seams(isolate_subscribers=False))
    services.hub.add_feed("BTC/USD", "1m")
    closed: list[TradeRecord] = []
    services.bus.subscribe(lambda e: closed.extend(e.trade for e in [e] if isinstance(e, PositionClosed)), types=[PositionClosed])
    t0 = 1_640_995_200_000
    burst = [
        Candle(t0 + 60_000, 100, 101, 99.5, 100, 1.0),
        Candle(t0 + 120_000, 90, 91, 89, 90, 1.0),  # gaps down through the stop at 95: fills at the open, 90
        Candle(t0 + 180_000, 92, 104, 91, 103, 1.0),
    ]

    async def main() -> tuple[int, int]:
        async with anyio.create_task_group() as tg:
            delivery = InboxDelivery(tg, 1, lambda owner, handler, exc: (_ for _ in ()).throw(exc))
            manager = StrategyManager(services, OrchestratorFactory(services), delivery)
            orchestrator = manager.load(
                strategy(id="s", exit_threshold=None, analyzers=[{"type": "ema_cross", "params": {"fast": 50, "slow": 100}}], exits={"stop_loss_pct": 5})
            )
            manager.activate("s")
            services.hub.ingest("BTC/USD", Candle(t0, 100, 100, 100, 100, 1.0))
            await delivery.drain()
            orchestrator.actions.put(OpenPosition("BTC/USD", "long", 1.0))
            orchestrator.actions.drain()
            for candle in burst:  # no yield between them: the inbox of size 1 coalesces
                services.hub.ingest("BTC/USD", candle)
            await delivery.drain()
            stats = delivery.stats(orchestrator)
            delivery.close_all()
        return stats["overruns"], stats["coalesced"]

    overruns, coalesced = anyio.run(main)
    assert overruns >= 1 and coalesced >= 1
    assert [(c.exit_reason, c.exit_price) for c in closed] == [("stop_loss", 90.0)]
