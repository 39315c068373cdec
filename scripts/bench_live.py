"""Live-feed latency (imported by scripts/bench.py): a kline websocket message arriving at the feed to its effect.

The fake Binance (tests/fake_exchange) pushes recorded ETH/BTC 1m candles over loopback to the
real ccxt client; the daemon's LiveFeed (bot/daemon/live_feed.py, around LiveCandleFeed)
publishes each closed candle into the candle hub, on which N `ema_cross` strategies are active.
Services are the daemon's on a live feed (wall clock, paper execution). Every latency starts
when ccxt hands the decoded closing kline message to the exchange's dispatch (arrival at the
feed: `exchange.handle_message`, just inside the feed's message guard, before ccxt turns the
kline into a row and the feed into a candle).

Three runs, the same strategies and stream otherwise:

- `direct` (DirectDelivery, as replay): the hub calls every orchestrator in turn, so when
  `hub.ingest` returns every strategy has processed the candle and carried out its actions.
  End points: the feed's `on_published` (right after `hub.ingest` returned), and each action
  appended to an orchestrator's ActionQueue (see below).
- `inbox` (the daemon's delivery, `bot run`): the manager routes through an InboxDelivery built
  as the daemon builds it (bot/kernel/daemon.py); `hub.ingest` only appends to each strategy's bounded inbox and
  a task per strategy processes it. End points: the delivery's `on_drained` hook (the one the
  daemon journals its feed position from), called when every inbox is empty after a
  strategy's turn, i.e. every strategy has processed every published candle; and, for candles
  on which strategies decide something, each action appended to its orchestrator's ActionQueue:
  both ways in are timed, the bound `put` the StrategyContext captured at construction (what
  `ctx.open`/`ctx.close` call) and the orchestrator's own `self.actions.put`; a check at the end
  proves every action carried out went through the timed `put`.
- `inbox` with `journal`: the same, plus an SQLite journal written as `bot run` writes it (each
  strategy's turn on a candle one transaction, committed on the journal's writer thread while
  the loop runs the other strategies, before the bus delivers its events: its strategy events
  and the daily risk tallies on fills; the feed position when every inbox is empty, committed
  after the stamp, the loop waiting for it), with its WAL checkpoint thread. "Every strategy
  done" is when the last strategy's turn is committed and delivered. The journal is closed
  after the run, out of the timings; the result adds the WAL file's size at the end and the
  checkpoints the WAL's size forced onto the writer thread.

Candles are streamed one at a time: the next is pushed 1 ms after the previous one has been
processed by every strategy (on an exchange they are a minute apart), so no backlog inflates
the figures.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.kernel.assembly import DeliveryFactory, JournalHook

REPO = Path(__file__).resolve().parents[1]
SYMBOL = "ETH/BTC"
TF_MS = 60_000
_TRADING_EVENTS = ("order_placed", "position_opened", "position_closed")


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _summary(prefix: str, values: list[float]) -> dict[str, Any]:
    if not values:
        return {f"{prefix}count": 0}
    return {
        f"{prefix}count": len(values),
        f"{prefix}p50_ms": _pct(values, 0.50),
        f"{prefix}p99_ms": _pct(values, 0.99),
        f"{prefix}max_ms": max(values),
        f"{prefix}mean_ms": statistics.fmean(values),
    }


def _specs(strategies: int) -> list[Any]:
    from tests.support import strategy

    # Short EMA periods so they cross often on the recorded data: entries and exits to time.
    return [
        strategy(id=f"s{i}", symbol=SYMBOL, quantity=1.0, analyzers=[{"type": "ema_cross", "params": {"fast": 3 + i % 5, "slow": 12 + i}}])
        for i in range(strategies)
    ]


def _bot(delivery: DeliveryFactory | None = None, journal: JournalHook | None = None, turns: Any = None) -> Any:
    from bot.clock import WallClock
    from bot.config.models import BotConfig
    from bot.kernel import Seams, build_bot
    from bot.log import BotLogger

    # As the daemon on a live feed, through the kernel: the wall clock is event time, paper execution.
    seams = Seams(clock=WallClock(), delivery=delivery, journal=journal, turns=turns)
    return build_bot(BotConfig(), "paper", seams, BotLogger.to_stderr(level=50, name="bench.live"))


class _ActionTimer:
    """Stamps every action appended to the orchestrators' queues; attributes it to the candle being processed."""

    def __init__(self, arrived: dict[int, float]) -> None:
        self._arrived = arrived
        self.puts = 0
        self.latencies: list[float] = []  # arrival -> put, one per action on a streamed candle
        self.last_per_candle: dict[int, float] = {}  # arrival -> the candle's last action put

    def instrument(self, orchestrator: Any) -> None:
        """Swap the queue's class for a subclass whose `put` appends then stamps, and re-bind the
        StrategyContext's `_put` (captured at construction) to it."""
        from bot.trading.actions import ActionQueue

        context = orchestrator.context
        perf = time.perf_counter
        stamp = self._stamp

        class TimedActionQueue(ActionQueue):
            __slots__ = ()

            def put(self, action: Any) -> None:
                self.queued.append(action)
                stamp(perf(), context.now)  # context.now: the close time of the candle being processed

        queue = orchestrator.actions
        queue.__class__ = TimedActionQueue
        context._put = queue.put

    def _stamp(self, at: float, close_ts: int) -> None:
        self.puts += 1
        start = self._arrived.get(close_ts - TF_MS)
        if start is not None:
            ms = (at - start) * 1000
            self.latencies.append(ms)
            self.last_per_candle[close_ts] = ms

    def check(self, orchestrators: list[Any]) -> None:
        """Every action the queues carried out (or failed) went through the timed `put` (the stamp is
        on the path), and the streamed candles produced some (the figure is not empty)."""
        carried = sum(o.actions.done + o.actions.failed + len(o.actions) for o in orchestrators)
        if carried != self.puts:
            raise RuntimeError(f"{carried} actions carried out but {self.puts} stamped: the timed put is not on the path")
        if not self.latencies:
            raise RuntimeError("no action on the streamed candles: nothing to time (shorter EMA periods?)")


async def _play(
    candles: int,
    services: Any,
    arrived: dict[int, float],
    on_published: Callable[[int], None],
    ready: Callable[[], None],
    idle: Callable[[], bool] = lambda: True,
) -> None:
    """Backfill through the daemon's LiveFeed, call `ready`, then stream `candles` closing klines.

    Each closing message is stamped on arrival (by its candle's open time). The next candle is
    pushed 1 ms after `idle()` says the previous one has been processed by everybody.
    """
    import anyio

    from bot.config.exchange import ExchangeConfig
    from bot.daemon.live_feed import LiveFeed
    from bot.live.exchange import build_exchange
    from tests.fake_exchange import FakeBinance
    from tests.support import ETH_1M

    async with FakeBinance({SYMBOL: ETH_1M}, start=2000) as fake:
        config = ExchangeConfig.model_validate(fake.exchange_config(feed={"symbols": [SYMBOL], "backfill": 500}))
        exchange, redact = build_exchange(config, {}, streaming=True)
        handle = exchange.handle_message

        def stamp(client: Any, message: Any) -> None:
            k = message.get("k") if isinstance(message, dict) else None
            if k and k.get("x"):
                arrived[k["t"]] = time.perf_counter()
            handle(client, message)

        # Installed first: the feed's message guard (a try/except) wraps it, nothing else does.
        exchange.handle_message = stamp
        log = logging.getLogger("bench.live")
        log.setLevel(logging.ERROR)
        feed = LiveFeed(exchange, config.feed, services.hub, services.bus, log, redact=redact, on_published=on_published)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(feed.run)  # returns after the REST backfill
                ready()
                await fake.wait_subscribed()
                for _ in range(candles):
                    await fake.stream(1)
                    await asyncio.sleep(0.001)
                    while not idle():
                        await asyncio.sleep(0.0005)
                feed.stop()
        finally:
            await feed.aclose()


def live_latency(candles: int = 2000, strategies: int = 10) -> dict[str, Any]:
    """Direct delivery: arrival at the feed -> `hub.ingest` returned (every strategy done), and -> each action put."""
    sys.path.insert(0, str(REPO))
    from bot.daemon import heap

    bot = _bot()
    services, manager = bot.services, bot.manager
    events: list[Any] = []
    services.bus.subscribe(events.append)
    arrived: dict[int, float] = {}
    latencies: list[float] = []
    timer = _ActionTimer(arrived)
    orchestrators: list[Any] = []

    def ready() -> None:  # as the daemon: load and activate (warm up from the backfill) once the feed started
        for spec in _specs(strategies):
            orchestrators.append(manager.load(spec))
            timer.instrument(orchestrators[-1])
            manager.activate(spec.id)
        heap.settle()

    def on_published(close_ts: int) -> None:  # right after hub.ingest returned
        start = arrived.get(close_ts - TF_MS)
        if start is not None:
            latencies.append((time.perf_counter() - start) * 1000)

    asyncio.run(_play(candles, services, arrived, on_published, ready))
    timer.check(orchestrators)
    return {
        "delivery": "direct",
        "strategies": strategies,
        "candles": len(latencies),
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": max(latencies),
        "mean_ms": statistics.fmean(latencies),
        **_summary("action_", timer.latencies),
        "action_candles": len(timer.last_per_candle),
        "trading_events": sum(e.type in _TRADING_EVENTS for e in events),
    }


def inbox_latency(candles: int = 2000, strategies: int = 10, inbox_size: int | None = None, journal: bool = False) -> dict[str, Any]:
    """The daemon's delivery: arrival at the feed -> every strategy done (on_drained), and -> each action put.

    With `journal`, an SQLite journal is written as `bot run` writes it (see the module docstring).
    """
    sys.path.insert(0, str(REPO))
    import anyio

    from bot.config.models import BotConfig
    from bot.daemon import heap
    from bot.daemon.delivery import InboxDelivery

    if inbox_size is None:
        inbox_size = BotConfig().daemon.inbox_size
    events: list[Any] = []
    arrived: dict[int, float] = {}
    ingested: list[float] = []  # arrival -> hub.ingest returned: queued in every inbox
    done: list[float] = []  # arrival -> every strategy has processed it
    in_flight: list[int] = []  # streamed candles (open times) published, not yet processed by all
    timer = _ActionTimer(arrived)
    errors: list[Exception] = []
    orchestrators: list[Any] = []
    write_position: Callable[[int], None] | None = None

    book: Any = None
    journal_hook: Any = None
    turns: Any = None
    wal_bytes = writer_checkpoints = 0
    if journal:
        from bot.daemon.recovery import FEED_POSITION
        from bot.daemon.startup import JournalRecorder
        from bot.journal import Journal
        from bot.journal.turns import Turns

        folder = Path(tempfile.mkdtemp(prefix="bench-live-"))
        book = Journal(folder / "journal.sqlite")
        log = logging.getLogger("bench.live")

        def journal_hook(risk: Any) -> Any:  # the daemon's: each event committed before delivery, the daily tallies on fills
            return JournalRecorder(book, risk, log)

        def write_position(close_ts: int) -> None:
            book.set_meta(FEED_POSITION, str(close_ts))

    def on_drained() -> None:
        # Every inbox is empty after a strategy's turn: everything published has been processed.
        if in_flight:
            now = time.perf_counter()
            for ts in in_flight:
                done.append((now - arrived[ts]) * 1000)
            if write_position is not None:  # the daemon's record_processed, after the stamp
                write_position(in_flight[-1] + TF_MS)
            in_flight.clear()

    async def main() -> list[dict[str, int]]:
        nonlocal turns
        if book is not None:  # as the daemon: each strategy's candle one commit (on the writer thread), delivered after it
            turns = Turns(book, asyncio.get_running_loop().call_soon_threadsafe)
        async with anyio.create_task_group() as tg:

            def inboxes(_services: Any, seam: Any) -> Any:
                def on_error(owner: Any, handler: Any, exc: Exception) -> None:
                    errors.append(exc)
                    seam(owner, handler, exc)

                # As the daemon builds it (bot/kernel/daemon.py).
                return InboxDelivery(tg, inbox_size, on_error, on_drained=on_drained, turn=None if turns is None else turns.turn)

            bot = _bot(inboxes, journal_hook, turns)
            services, manager = bot.services, bot.manager
            delivery = manager.delivery
            services.bus.subscribe(events.append)

            def ready() -> None:  # as the daemon: load and activate (warm up from the backfill) once the feed started
                for spec in _specs(strategies):
                    orchestrators.append(manager.load(spec))
                    timer.instrument(orchestrators[-1])
                    manager.activate(spec.id)
                heap.settle()

            def on_published(close_ts: int) -> None:  # right after hub.ingest returned
                start = arrived.get(close_ts - TF_MS)
                if start is not None:
                    ingested.append((time.perf_counter() - start) * 1000)
                    in_flight.append(close_ts - TF_MS)
                if write_position is not None and delivery.queued() == 0:  # the daemon's record_feed_position
                    write_position(close_ts)

            await _play(candles, services, arrived, on_published, ready, lambda: not in_flight)
            await delivery.drain()
            stats = [delivery.stats(o) for o in orchestrators]
            delivery.close_all()
        return stats

    try:
        stats = asyncio.run(main())
    finally:
        if book is not None:  # as the daemon on its way out: stops the checkpoint thread, checkpoints
            wal = book.path.with_name(book.path.name + "-wal")
            wal_bytes = wal.stat().st_size if wal.exists() else 0
            writer_checkpoints = book.writer_checkpoints
            book.close()
            shutil.rmtree(folder, ignore_errors=True)
    if errors:
        raise RuntimeError(f"strategy errors on the inbox path: {errors[:3]}")
    if in_flight:
        raise RuntimeError(f"{len(in_flight)} candles never processed by every strategy")
    timer.check(orchestrators)
    return {
        "delivery": "inbox",
        "journal": journal,
        "strategies": strategies,
        "inbox_size": inbox_size,
        "candles": len(done),
        **_summary("done_", done),
        **_summary("ingest_", ingested),
        **_summary("action_", timer.latencies),
        "action_candles": len(timer.last_per_candle),
        **{k: v for k, v in _summary("action_last_", list(timer.last_per_candle.values())).items() if k != "action_last_count"},
        "processed": sum(s["processed"] for s in stats),
        "overruns": sum(s["overruns"] for s in stats),
        "coalesced": sum(s["coalesced"] for s in stats),
        "trading_events": sum(e.type in _TRADING_EVENTS for e in events),
        **({"wal_bytes": wal_bytes, "writer_checkpoints": writer_checkpoints, "turn_commits": turns.commits, "group_commits": book.group_commits, "grouped_turns": book.grouped_turns} if journal else {}),
    }


if __name__ == "__main__":
    print(live_latency())
    print(inbox_latency())
    print(inbox_latency(journal=True))
