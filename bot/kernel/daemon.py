"""`bot run`: the daemon's start-up phases in order, the bot built by the kernel, and the control server it serves."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from bot.bus import Handler
from bot.candles.sources import CandleSource
from bot.clock import WallClock
from bot.control.server import ControlServer, claim_socket_path, control_token
from bot.daemon import heap
from bot.daemon.chart_series import ChartSeries
from bot.daemon.delivery import InboxDelivery
from bot.daemon.equity_curves import EquityCurves
from bot.daemon.event_lines import (
    GAP_LINE_INTERVAL,
    LOGGED_EVENTS,
    EventLines,
    GapLines,
)
from bot.daemon.feed import Pacer, RecordedFeed
from bot.daemon.feed_position import FeedPosition
from bot.daemon.inbox import CandleWork
from bot.daemon.live_feed import DaemonFeed, close_exchange
from bot.daemon.recovery import DailySnapshots
from bot.daemon.startup import (
    JournalRecorder,
    activate,
    add_journalled_symbols,
    build_feed,
    load_strategies,
    open_journal,
    reconcile,
    restore,
    resume_close_of,
    stop_trading,
    strategies_to_load,
)
from bot.daemon.state import DaemonState
from bot.daemon.trade_counts import TradeCounts
from bot.daemon.turn_progress import TurnProgress
from bot.events import CandleClosed, PositionClosed
from bot.journal import Journal, JournalError
from bot.journal.lock import JournalLock
from bot.journal.reader import JournalReader
from bot.journal.turns import Turns
from bot.kernel.assembly import Bot, Mode, Seams, build_bot
from bot.log import BotLogger
from bot.metrics import METRICS_EVENTS
from bot.services import BotServices
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.config_load import LoadedConfig
from bot.strategy.delivery import HandlerErrorHook
from bot.trading.risk import RiskManager

if TYPE_CHECKING:
    from bot.cluster.outbox import Outbox
    from bot.control.commands import Control
    from bot.daemon.live_trading import LiveTrading
    from bot.http.server import HttpServer

# `bot run`'s exit code when the live feed fails while trading (a failure at start is a BotError: 2).
EXIT_FEED_FAILED = 4
# Seconds a stop gives the cluster's outbox to publish what is waiting (then it is left, and logged).
OUTBOX_FLUSH_S = 5.0
# Seconds a stop (live) gives the orders on their way to the exchange (a close held behind its stop's cancel, an
# unload settling) to get their outcome before the gateway stops; a second SIGTERM/SIGINT ends the wait.
ORDERS_STOP_WAIT_S = 15.0


def socket_path_of(loaded: LoadedConfig) -> Path:
    """Where the daemon of this config listens."""
    return (loaded.base_dir / loaded.bot.control.socket).resolve()


# -- serve ----------------------------------------------------------------------------------------
def control_server(
    loaded: LoadedConfig,
    bot: Bot,
    feed: DaemonFeed,
    journal: Journal,
    start_problems: Callable[[], list[str]],
    files: dict[str, Path],
    added_symbols: dict[str, dict[str, str]],
    request_stop: Callable[[], None],
    socket_path: Path,
    log: logging.Logger,
    cluster_status: Callable[[], dict[str, Any]] | None = None,
    history: JournalReader | None = None,
    trade_counts: TradeCounts | None = None,
    equity_curves: EquityCurves | None = None,
    candle_work: CandleWork | None = None,
) -> ControlServer:
    """The control socket's server, on the daemon's state (serving starts before the strategies load)."""
    state = DaemonState(
        loaded, bot.services, bot.manager, feed, request_stop, journal=journal, start_problems=start_problems, cluster_status=cluster_status,
        history=history, trade_counts=trade_counts, equity_curves=equity_curves, charts=ChartSeries(bot.services.hub), candle_work=candle_work,
    )
    state.strategy_files.update(files)
    state.added_symbols.update(added_symbols)
    return ControlServer(state, loaded.bot.control, socket_path, log)


# Seconds a stop waits for the HTTP server to answer the requests under way (its own grace is 2 s).
HTTP_STOP_WAIT_S = 3.0


def _cluster_status(outbox: Outbox, minds: Callable[[], dict[str, Any]] | None) -> Callable[[], dict[str, Any]]:
    """`bot ctl status`'s cluster section: the outbox's, and with strategies on workers, the minds' under `minds`."""
    if minds is None:
        return outbox.status

    def status() -> dict[str, Any]:
        return {**outbox.status(), "minds": minds()}

    return status


class Daemon:
    """`bot run`: trades every enabled strategy on a clock-driven or live feed until told to stop.

    Start: claim the control socket (a second daemon refuses here), open the journal, load the
    strategies and restore what the journal recorded for them (positions with stops, take-
    profit ladders and trailing state, pending orders, portfolio, id counters), backfill the
    feed (recorded: resuming after the last candle published before a restart; live, with
    `feed.source` ccxt: the candles before now, the downtime reported as a gap), then put each
    strategy back in its journalled state (or activate a new one; they warm up from the
    backfill) and play the feed. Stop (SIGTERM, SIGINT, `shutdown`, or the live feed failing):
    stop the feed, let every strategy finish its queued candles, in mode live wait for the orders
    on their way to the exchange (ORDERS_STOP_WAIT_S at most; a second SIGTERM/SIGINT ends the wait),
    journal an equity snapshot, close the socket, remove its file, close the exchange's connections. A stop while mode live
    still waits on the exchange at start (markets, reconciliation) ends the start there, with no
    wait for orders (none was sent): exit 0, "stopped before trading started". An exchange whose markets do not load within
    `exchange.start_timeout_s` ends the start with ExchangeUnreachable (exit 2); until then
    `status` is degraded, saying why.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        sources: list[CandleSource],
        logger: BotLogger,
        pacer: Pacer | None = None,
        journal_lock: JournalLock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        make_candle_work: Callable[[], CandleWork] = CandleWork,
        carried_numbering: Mapping[str, tuple[int, int]] | None = None,
        orders_stop_wait_s: float = ORDERS_STOP_WAIT_S,
    ) -> None:
        self.loaded = loaded
        self.sources = sources
        self.logger = logger
        # The journal's lock already held (`run --fresh` moved the old journal aside under it), or None.
        self._journal_lock = journal_lock
        # Wall-clock seconds for rate-limiting log lines (candle gap summaries), never for trading.
        self._monotonic = monotonic
        # When the recorded feed plays each candle: None is feed.speed's clock; a test steps it instead.
        self._pacer = pacer
        # Makes each run's count of the strategies' candle work (a bench notes when it drains).
        self._make_candle_work = make_candle_work
        # Per strategy, the last order and position numbers of a journal `run --fresh` moved aside.
        self._carried_numbering = dict(carried_numbering or {})
        # The stop's bound on the wait for orders on their way (a test passes a short one to see it run out).
        self._orders_stop_wait_s = orders_stop_wait_s
        self._stop = anyio.Event()
        # Set by the second SIGTERM/SIGINT: the stop waits no longer for the orders on their way. Signals are
        # counted, not stops: `shutdown` then one SIGTERM (systemd's ExecStop=, then its kill) still waits.
        self._hurry = anyio.Event()
        self._signals = 0
        self.socket_path = socket_path_of(loaded)
        self._feed: DaemonFeed | None = None
        self._failure: str | None = None
        # The start-up step waiting on the exchange (markets, reconciliation): a stop cuts it short.
        self._starting: anyio.CancelScope | None = None

    def request_stop(self) -> None:
        """Begin a graceful stop (a live backfill, or a start still waiting on the exchange, is cut short)."""
        self._stop.set()
        if self._feed is not None:
            self._feed.stop()
        if self._starting is not None:
            self._starting.cancel()

    async def _unless_stopped(self, step: Callable[[], Awaitable[None]]) -> bool:
        """Run a start-up step that may wait on the exchange for long; False when a stop came first or cut it short."""
        if self._stop.is_set():
            return False
        with anyio.CancelScope() as scope:
            self._starting = scope
            try:
                await step()
            finally:
                self._starting = None
        return not scope.cancelled_caught

    def _feed_failed(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
            self.logger.logger.error("%s: stopping the daemon", reason)
        self.request_stop()

    async def run(self) -> int:
        """Run until stopped; return the process exit code."""
        # Before anything else: the journal's lock, so a second daemon on it is refused before it
        # reads or writes anything (even with another socket); then the socket and its token.
        journal = open_journal(self.loaded, self._journal_lock)
        try:
            journal.carry_numbering(self._carried_numbering)  # before any strategy is restored and numbers its orders
            claim_socket_path(self.socket_path)
            control_token(self.loaded.bot.control)
            exchange_config = self.loaded.bot.exchange if self.loaded.bot.feed.source == "ccxt" else None
            if exchange_config is None:
                return await self._run(journal, None)
            from bot.live.exchange import build_exchange  # here: ccxt is slow to import

            # Keys come from the environment variables the config names; never logged.
            exchange, redact = build_exchange(exchange_config, os.environ, streaming=True)
            try:
                return await self._run(journal, (exchange, redact))
            finally:
                await close_exchange(exchange, redact, self.logger.logger)
        finally:
            journal.close()

    async def _run(self, journal: Journal, exchange: tuple[Any, Any] | None) -> int:
        config = self.loaded.bot
        log = self.logger.logger
        # A live feed's event time is the wall clock; recorded candles drive a candle clock.
        clock = WallClock() if exchange is not None else None
        live: LiveTrading | None = None
        # Live: built before the gateway and the strategy manager; the gateway reports through it, the manager handles.
        faults = BookingFaults(log)
        # Each candle a strategy handles is one journal commit, on the journal's writer thread; its
        # events and orders go out after it. anyio runs on asyncio here: its loop hears the commits.
        turns = Turns(journal, asyncio.get_running_loop().call_soon_threadsafe, on_error=partial(_settle_failed, log))
        if config.mode == "live":
            assert config.exchange is not None and clock is not None  # checked when the config was loaded
            from bot.daemon.live_trading import (
                LiveTrading,  # here: ccxt is slow to import
            )

            # Orders go to the exchange instead of the paper exchange; keys from the environment.
            live = LiveTrading(config.exchange, os.environ, clock, log, faults, turns)
        try:
            return await self._run_services(journal, exchange, clock, live, faults, turns)
        finally:
            if live is not None:
                await live.close()

    def _outbox(self) -> Outbox | None:
        """With a cluster section: the outbox publishing the hub's candles and events to the server (nats imported only then)."""
        if self.loaded.bot.cluster is None:
            return None
        from bot.cluster.hub_outbox import hub_outbox

        return hub_outbox(self.loaded.bot, self.loaded.base_dir, self.logger.logger, os.environ, time.time_ns())

    def _http(self, control: Control) -> HttpServer | None:
        """With an http section: the server of the API on the control commands (starlette and uvicorn imported only then)."""
        config = self.loaded.bot.http
        if config is None:
            return None
        from bot.http.api import api_app
        from bot.http.prometheus import DaemonMetrics
        from bot.http.server import HttpServer, http_token

        token = http_token(config, os.environ)
        bot_config = self.loaded.bot
        exchange = bot_config.exchange.id if bot_config.exchange is not None and bot_config.feed.source == "ccxt" else "paper"
        metrics = DaemonMetrics(control, exchange)
        return HttpServer(config, lambda port: api_app(control, config, port, token, self.logger.logger, metrics), self.logger.logger)

    def _build(
        self,
        tg: anyio.abc.TaskGroup,
        journal: Journal,
        clock: WallClock | None,
        live: LiveTrading | None,
        faults: BookingFaults,
        turns: Turns,
        outbox: Outbox | None,
        progress: TurnProgress,
        curves: EquityCurves,
    ) -> tuple[Bot, InboxDelivery, FeedPosition]:
        """The bot, through the kernel: every event journalled before delivery, each strategy on its own inbox, each candle it handles one turn.

        The feed's journalled position is built first, on the count of queued candles: the
        delivery reports to it when drained, the feed (built later) each close it publishes.
        """
        config = self.loaded.bot
        log = self.logger.logger
        queued = self._make_candle_work()
        position = FeedPosition(journal, queued)

        def inboxes(services: BotServices, on_error: HandlerErrorHook) -> InboxDelivery:
            cluster = config.cluster
            if cluster is not None and cluster.placement == "workers":
                # Strategies decide on workers, their books here: NATS imported only then.
                from bot.cluster.hub_lanes import hub_lanes

                return hub_lanes(
                    cluster, self.loaded, services, tg, on_error, journal, turns, log, os.environ,
                    on_drained=position.processed, queued=queued, progress=progress, after_turn=curves.handled,
                )
            return InboxDelivery(
                tg, config.daemon.inbox_size, on_error, on_drained=position.processed, queued=queued, turn=turns.turn, progress=progress,
                after_turn=curves.handled,
            )

        def journal_first(risk: RiskManager) -> Handler:
            return JournalRecorder(journal, risk, log)

        mode: Mode = "live" if live is not None else "paper"
        seams = Seams(
            clock=clock,
            exchange=None if live is None else live.gateway,
            accounts=None if live is None else live.gateway,
            booking_faults=None if live is None else faults,
            delivery=inboxes,
            journal=journal_first,
            turns=turns,
            candle_history=None if outbox is None else outbox.candle,
        )
        bot = build_bot(config, mode, seams, self.logger, self.loaded.catalog)
        if outbox is not None:
            # Subscribed before anything is published: the bus delivers events only once journalled, in seq order.
            bot.services.bus.subscribe(outbox.event)
        delivery = bot.manager.delivery
        assert isinstance(delivery, InboxDelivery)  # what `inboxes` built
        return bot, delivery, position

    async def _run_services(
        self, journal: Journal, exchange: tuple[Any, Any] | None, clock: WallClock | None, live: LiveTrading | None, faults: BookingFaults, turns: Turns
    ) -> int:
        # Trades and daily equity for the API, read in worker threads on a connection of its own (closed
        # as the daemon stops, a read under way interrupted; here too should the start fail).
        history = JournalReader(journal.path)
        try:
            return await self._serve(journal, exchange, clock, live, faults, turns, history)
        finally:
            history.close()

    async def _serve(
        self,
        journal: Journal,
        exchange: tuple[Any, Any] | None,
        clock: WallClock | None,
        live: LiveTrading | None,
        faults: BookingFaults,
        turns: Turns,
        history: JournalReader,
    ) -> int:
        config = self.loaded.bot
        log = self.logger.logger
        trading = True  # False once a stop cut the live start short: nothing was reconciled or traded
        async with anyio.create_task_group() as tg:
            # First, so a SIGTERM during start-up (load, backfill) is a graceful stop too.
            await tg.start(self._watch_signals)
            outbox = self._outbox()
            # Read before any candle is routed: what each strategy had handled, should the feed play it again.
            progress = TurnProgress(journal, log)
            # Each strategy's equity curve, a point per turn it has had committed (after what an earlier run handled).
            curves = EquityCurves(resume_close_of(journal), progress.handled_before())
            bot, delivery, position = self._build(tg, journal, clock, live, faults, turns, outbox, progress, curves)
            # The garbage collector's full passes between rounds (bot.daemon.heap).
            tg.start_soon(heap.FullCollections(position.work).run)
            if outbox is not None:
                # Connects in the background: the daemon trades while the server is down, the outbox buffering.
                await tg.start(outbox.run)
            services, manager = bot.services, bot.manager
            # The trades of earlier runs counted once, in the background; this run's as they close (before any can).
            trade_counts: TradeCounts | None = None
            try:
                trade_counts = TradeCounts(await history.next_trade_number())
            except JournalError as exc:  # the API's counts only: the daemon trades on
                log.warning("trade counts unavailable (the API shows none): %s", exc)
            if trade_counts is not None:
                services.bus.subscribe(trade_counts, types=(PositionClosed,))
                tg.start_soon(trade_counts.load, history)
            restored = restore(self.loaded, journal, services, log)
            saved = restored.saved
            gap_lines = GapLines(log, self._monotonic, self._loop_period)
            services.bus.subscribe(EventLines(log, gap_lines), types=LOGGED_EVENTS)
            tg.start_soon(self._flush_gap_lines, gap_lines)
            feed = build_feed(self.loaded, services, delivery, position, self.sources, exchange, restored.resume_close, self._feed_failed, self._pacer)
            self._feed = feed
            if self._stop.is_set():
                feed.stop()  # a signal came during start-up
            added_symbols = add_journalled_symbols(journal, feed, services.hub, restored.resume_close or 0, log)
            to_load = strategies_to_load(self.loaded, journal, saved, log)
            start_problems = live.problems if live is not None else list
            cluster_status = None if outbox is None else _cluster_status(outbox, getattr(delivery, "minds_status", None))
            server = control_server(
                self.loaded, bot, feed, journal, start_problems, to_load.files, added_symbols, self.request_stop, self.socket_path, log, cluster_status,
                history, trade_counts, curves, position.work,
            )
            services.bus.subscribe(DailySnapshots(journal, manager, restored.resume_close), types=(CandleClosed,))
            # Candles, gaps, orders and reconnects counted for /metrics (the daemon's; a replay counts none).
            services.bus.subscribe(services.metrics.observe, types=METRICS_EVENTS)
            async with server.serving():
                log.info("control socket %s", self.socket_path)
                http = self._http(server.control)
                if http is not None:
                    await tg.start(http.run)
                await services.start()
                try:
                    # The gateway retries the markets while the exchange is down: a stop meanwhile ends
                    # the start there (no reconciliation, no order), then the usual orderly stop.
                    if live is not None:
                        trading = await self._unless_stopped(partial(live.start, tg, manager))
                    loaded_specs = load_strategies(to_load, saved, manager, services.risk, journal, log)
                    if live is not None and trading:
                        assert config.exchange is not None
                        trading = await self._unless_stopped(partial(reconcile, live, manager, services.bus, config.exchange.feed.symbols))
                    await tg.start(feed.run)
                    activate(loaded_specs, saved, manager, services.hub, log)
                    await self._stop.wait()
                    # A start cut short sent nothing (stops are armed last): nothing can be held, so no wait.
                    finish_orders = None if live is None or not trading else partial(live.finish_orders, manager, self._orders_stop_wait_s, self._hurry)
                    await stop_trading(feed, delivery, gap_lines, manager, services, journal, turns, finish_orders)
                finally:
                    with anyio.CancelScope(shield=True):
                        if http is not None:
                            # Requests under way are answered first (the server's grace), then the rest stops.
                            http.stop()
                            with anyio.move_on_after(HTTP_STOP_WAIT_S):
                                await http.done.wait()
                        try:
                            await services.stop()
                        finally:
                            history.close()
                        if outbox is not None:
                            await outbox.close(OUTBOX_FLUSH_S)
            tg.cancel_scope.cancel()
        if self._failure is not None:
            log.error("stopped: %s", self._failure)
            return EXIT_FEED_FAILED
        log.info("stopped before trading started" if not trading else "stopped")
        return 0

    def _loop_period(self, symbol: str) -> int | None:
        """How far apart two passes of the looped recording are, for a symbol of it (None: it does not loop)."""
        feed = self._feed
        if isinstance(feed, RecordedFeed) and any(source.symbol == symbol for source in self.sources):
            return feed.loop_period
        return None

    async def _flush_gap_lines(self, gap_lines: GapLines) -> None:
        """Log the candle gaps held back by the once-a-minute limit, once their minute is over."""
        while True:
            await anyio.sleep(GAP_LINE_INTERVAL / 6)
            gap_lines.flush_due()

    async def _watch_signals(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for signum in signals:
                # Keep the receiver for the whole run: a second signal during a slow stop must
                # not fall back to the default handler (which would leave the socket file).
                self._signals += 1
                self.logger.logger.info("received %s%s", signal.Signals(signum).name, " (already stopping)" if self._stop.is_set() else "")
                if self._signals >= 2:
                    self._hurry.set()
                self.request_stop()


def _settle_failed(log: logging.Logger, exc: BaseException) -> None:
    """An event or send from outside any turn failed once the turns before it were settled: logged, the daemon goes on."""
    log.error("delivering an event or sending an order after the turns before it: %s: %s", type(exc).__name__, exc, exc_info=exc)
