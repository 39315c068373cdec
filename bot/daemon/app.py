"""The daemon: one task group running the feed, a task per strategy and the control server."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from anyio.abc import TaskStatus

from bot.candles.hub import CandleHub
from bot.clock import WallClock
from bot.config.loader import LoadedConfig, changed_strategy, load_strategy
from bot.config.models import StrategyConfig
from bot.control.commands import DaemonState
from bot.control.server import ControlServer, claim_socket_path, control_token
from bot.daemon.delivery import InboxDelivery
from bot.daemon.event_lines import GAP_LINE_INTERVAL, LOGGED_EVENTS, EventLines, GapLines
from bot.daemon.feed import Pacer, RecordedFeed
from bot.daemon import heap
from bot.daemon.live_feed import DaemonFeed, LiveFeed, PlayedFeed, close_exchange
from bot.daemon.recovery import (
    ADDED_SYMBOL,
    FEED_POSITION,
    KILL_SWITCH,
    OVERRIDES,
    STRATEGY_FILE,
    DailySnapshots,
    DailyTallies,
    mark_at_last_close,
    restore_orchestrator,
    tripped_currency,
    unread_holdings,
)
from bot.event_codec import payload_of
from bot.events import CandleClosed, Event, FeedState, KillSwitch, PositionClosed, PositionOpened, PositionReduced
from bot.errors import BotError, ConfigError, StrategyStateError
from bot.fmt import format_fields, format_path, format_time
from bot.journal import Journal
from bot.journal.lock import JournalLock
from bot.log import BotLogger
from bot.replay.sources import CandleSource
from bot.services import BotServices
from bot.symbols import shown, symbol_problem
from bot.strategy.factory import OrchestratorFactory
from bot.strategy.manager import StrategyManager
from bot.strategy.orchestrator import TradingOrchestrator

if TYPE_CHECKING:
    from bot.daemon.live_trading import LiveTrading


# Events whose fill books PnL or fees into the risk manager's daily tallies.
_BOOKING_EVENTS = (PositionOpened, PositionReduced, PositionClosed)
# `bot run`'s exit code when the live feed fails while trading (a failure at start is a BotError: 2).
EXIT_FEED_FAILED = 4


class Daemon:
    """`bot run`: trades every enabled strategy on a clock-driven or live feed until told to stop.

    Start: claim the control socket (a second daemon refuses here), open the journal, load the
    strategies and restore what the journal recorded for them (positions with stops, take-
    profit ladders and trailing state, pending orders, portfolio, id counters), backfill the
    feed (recorded: resuming after the last candle published before a restart; live, with
    `feed.source` ccxt: the candles before now, the downtime reported as a gap), then put each
    strategy back in its journalled state (or activate a new one; they warm up from the
    backfill) and play the feed. Stop (SIGTERM, SIGINT, `shutdown`, or the live feed failing):
    stop the feed, let every strategy finish its queued candles, journal an equity snapshot,
    close the socket, remove its file, close the exchange's connections. A stop while mode live
    still waits on the exchange at start (markets, reconciliation) ends the start there: exit 0,
    "stopped before trading started". An exchange whose markets do not load within
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
        self._stop = anyio.Event()
        self.socket_path = (loaded.base_dir / loaded.bot.control.socket).resolve()
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
        journal = Journal(self.loaded.base_dir / self.loaded.bot.journal.path, lock=self._journal_lock)
        try:
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
        if config.mode == "live":
            assert config.exchange is not None and clock is not None  # checked when the config was loaded
            from bot.daemon.live_trading import LiveTrading  # here: ccxt is slow to import

            # Orders go to the exchange instead of the paper exchange; keys from the environment.
            live = LiveTrading(config.exchange, os.environ, clock, log)
        try:
            return await self._run_services(journal, exchange, clock, live)
        finally:
            if live is not None:
                await live.close()

    async def _run_services(self, journal: Journal, exchange: tuple[Any, Any] | None, clock: WallClock | None, live: LiveTrading | None) -> int:
        config = self.loaded.bot
        log = self.logger.logger
        services = BotServices.for_replay(config, self.logger, clock=clock, exchange=None if live is None else live.gateway)
        tallies = DailyTallies(journal, services.risk, log)

        def journal_first(event: Event) -> None:
            journal.record(event)
            if isinstance(event, KillSwitch):  # market-wide, but it must survive a restart
                journal.set_meta(KILL_SWITCH, orjson.dumps(payload_of(event)).decode())
            elif isinstance(event, _BOOKING_EVENTS):
                # The daily-loss limits must hold across a restart too.
                tallies.record(event.strategy_id)

        # Every strategy change is committed to the journal before any subscriber hears of it.
        services.bus.before_delivery = journal_first
        tripped = journal.get_meta(KILL_SWITCH)
        if tripped:
            services.risk.engage(tripped_currency(tripped))
            log.warning("kill switch still engaged from before the restart (bot ctl risk-reset releases it)")
        tallies.restore_currencies()
        gap_lines = GapLines(log, self._monotonic, self._loop_period)
        services.bus.subscribe(EventLines(log, gap_lines), types=LOGGED_EVENTS)
        saved = journal.strategy_states()  # read before loading announces fresh states
        resume = journal.get_meta(FEED_POSITION)
        self._announce_journal(journal, saved, resume)
        trading = True  # False once a stop cut the live start short: nothing was reconciled or traded
        async with anyio.create_task_group() as tg:
            # First, so a SIGTERM during start-up (load, backfill) is a graceful stop too.
            await tg.start(self._watch_signals)
            tg.start_soon(self._flush_gap_lines, gap_lines)
            manager: StrategyManager | None = None

            def on_error(owner: object, handler: object, exc: Exception) -> None:
                assert manager is not None
                manager.on_handler_error(owner, handler, exc)  # type: ignore[arg-type]

            def record_processed() -> None:
                # Called when every inbox is empty: all published candles have been processed.
                if feed.last_close is not None:
                    journal.set_meta(FEED_POSITION, str(feed.last_close))

            delivery = InboxDelivery(tg, config.daemon.inbox_size, on_error, on_drained=record_processed)
            # Live: the gateway's accounts outlive an unload while orders of it are in flight.
            accounts = None if live is None else live.gateway
            manager = StrategyManager(services, OrchestratorFactory(services, self.loaded.catalog), delivery, accounts)

            def announce_feed(feed_state: str, info: dict[str, Any]) -> None:
                services.bus.publish(FeedState, None, feed_state, dict(info))

            def record_feed_position(close_ts: int) -> None:
                # Only once every strategy has processed what was published: a restart resumes
                # after this point, and must not skip candles still queued at a crash.
                if delivery.queued() == 0:
                    journal.set_meta(FEED_POSITION, str(close_ts))

            resume_close = int(resume) if resume else None
            feed: DaemonFeed
            if exchange is not None:
                assert config.exchange is not None
                feed = LiveFeed(
                    exchange[0],
                    config.exchange.feed,
                    services.hub,
                    services.bus,
                    log,
                    redact=exchange[1],
                    resume_after=resume_close,
                    on_published=record_feed_position,
                    on_fatal=self._feed_failed,
                    start_timeout_s=config.exchange.start_timeout_s,
                )
            else:
                for source in self.sources:
                    services.hub.add_feed(source.symbol, source.timeframe)
                feed = PlayedFeed(
                    self.sources,
                    services.hub,
                    config.feed.speed,
                    config.feed.loop,
                    config.feed.backfill,
                    announce_feed,
                    resume_after=resume_close,
                    on_published=record_feed_position,
                    pacer=self._pacer,
                    processed=delivery.drain,
                )
            self._feed = feed
            if self._stop.is_set():
                feed.stop()  # a signal came during start-up
            added_symbols = self._add_journalled_symbols(journal, feed, services.hub, resume_close or 0)
            specs, files, on_file_spec = self._strategies_to_load(journal, saved)
            state = DaemonState(
                self.loaded, services, manager, feed, self.request_stop, journal=journal,
                start_problems=live.problems if live is not None else (lambda: []),
            )
            state.strategy_files.update(files)
            state.added_symbols.update(added_symbols)
            server = ControlServer(state, config.control, self.socket_path, log)
            services.bus.subscribe(DailySnapshots(journal, manager), types=(CandleClosed,))
            async with server.serving():
                log.info("control socket %s", self.socket_path)
                await services.start()
                try:
                    # The gateway retries the markets while the exchange is down: a stop meanwhile ends
                    # the start there (no reconciliation, no order), then the usual orderly stop.
                    if live is not None:
                        trading = await self._unless_stopped(partial(live.start, tg, manager))
                    loaded_specs = []
                    for spec in specs:
                        try:
                            orchestrator = manager.load(spec, announce=spec.id not in saved)
                            if spec.id in on_file_spec:
                                self._check_fallback(journal, orchestrator)
                            journal.set_meta(STRATEGY_FILE + spec.id, str(files[spec.id]))
                            if spec.id in saved:
                                restored = restore_orchestrator(journal, orchestrator)
                                tallies.restore_strategy(spec.id)
                                log.info("[%s] restored from the journal: %s", spec.id, format_fields(restored))
                        except (BotError, ValueError, KeyError) as exc:  # one strategy's problem stays its own
                            log.error("[%s] not loaded (its journalled state is kept): %s", spec.id, exc)
                            if spec.id in manager.ids():
                                manager.discard(spec.id)
                            continue
                        loaded_specs.append(spec)
                    if live is not None and trading:
                        assert config.exchange is not None
                        trading = await self._unless_stopped(partial(self._reconcile, live, manager, services, config.exchange.feed.symbols))
                    await tg.start(feed.run)
                    for spec in loaded_specs:
                        if spec.id in saved:
                            mark_at_last_close(manager.get(spec.id), services.hub)
                    for spec in loaded_specs:
                        row = saved.get(spec.id)
                        if row is not None and row["state"] == "unloaded":
                            row = None  # unloaded at runtime; the config enables it: start it afresh
                        try:
                            if row is None:
                                manager.activate(spec.id)
                            else:
                                manager.restore_state(spec.id, row["state"], row["policy"], row["last_error"])
                        except BotError as exc:  # one strategy's failure stays its own
                            log.error("%s", exc)
                    heap.settle()
                    await self._stop.wait()
                    log.info("stopping: feed, then queued candles")
                    feed.stop()
                    with anyio.move_on_after(10):
                        await delivery.drain()
                    delivery.close_all()
                    gap_lines.flush()
                    ts = services.clock.now_ms()
                    for sid in manager.ids():
                        journal.snapshot_equity(sid, ts, manager.get(sid).portfolio.snapshot())
                finally:
                    with anyio.CancelScope(shield=True):
                        await services.stop()
            tg.cancel_scope.cancel()
        if self._failure is not None:
            log.error("stopped: %s", self._failure)
            return EXIT_FEED_FAILED
        log.info("stopped before trading started" if not trading else "stopped")
        return 0

    def _add_journalled_symbols(self, journal: Journal, feed: DaemonFeed, hub: CandleHub, now_ms: int) -> dict[str, dict[str, str]]:
        """Add again the symbols added at runtime before a restart; one that is not a symbol is dropped from the journal."""
        log = self.logger.logger
        added: dict[str, dict[str, str]] = {}
        feed_symbols = set(hub.symbols())
        for symbol, raw in journal.meta_with_prefix(ADDED_SYMBOL).items():
            problem = symbol_problem(symbol)
            if problem is None and symbol in feed_symbols:
                problem = "it has a feed from the config now"
            if problem is not None:
                # Accepted by an older version that checked nothing: never a reason not to start.
                log.warning("dropping the symbol %s added before the restart: %s", shown(symbol), problem)
                journal.delete_meta(ADDED_SYMBOL + symbol)
                continue
            try:
                entry = orjson.loads(raw)
                source = CandleSource(symbol, Path(entry["path"]), entry["timeframe"])
                feed.add_source(source, now_ms)
            except (BotError, ValueError, KeyError, TypeError, OSError) as exc:
                log.error("symbol %s added before the restart cannot be added again: %s", symbol, exc)
                continue
            added[symbol] = {"file": str(source.path), "timeframe": source.timeframe}
        return added

    async def _reconcile(self, live: LiveTrading, manager: StrategyManager, services: BotServices, symbols: tuple[str, ...]) -> None:
        """Fix the journal from the exchange before any strategy trades; no trading when the exchange cannot be asked."""
        import ccxt

        from bot.live.errors import ExchangeSetupError, describe

        try:
            await live.reconcile(manager, services.bus, symbols)
        except ccxt.BaseError as exc:
            raise ExchangeSetupError(f"reconciliation with the exchange failed, not trading: {describe(exc, live.redact)}") from None

    def _strategies_to_load(
        self, journal: Journal, saved: dict[str, dict[str, Any]]
    ) -> tuple[list[StrategyConfig], dict[str, Path], set[str]]:
        """The config's enabled strategies, plus those loaded at runtime before a restart (from their files);
        with the ids whose runtime changes could not be re-applied (on their file's spec)."""
        specs = list(self.loaded.enabled_strategies())
        files: dict[str, Path] = {spec.id: self.loaded.strategy_files[spec.id].resolve() for spec in specs}
        in_config = {spec.id for spec in self.loaded.strategies}
        for sid, row in saved.items():
            # A strategy the config lists but disables stays off; an unloaded one stays unloaded.
            if sid in files or sid in in_config or row["state"] == "unloaded":
                continue
            recorded = journal.get_meta(STRATEGY_FILE + sid)
            if not recorded:
                self.logger.logger.warning("[%s] journalled but no strategy file is known: not restored", sid)
                continue
            try:
                spec = load_strategy(Path(recorded), self.loaded.bot, str(self.loaded.path), catalog=self.loaded.catalog)
            except ConfigError as exc:
                self.logger.logger.error("[%s] not restored: %s", sid, exc)
                continue
            if spec.id != sid or spec.id in files:
                self.logger.logger.error("[%s] not restored: its file %s now holds strategy %r", sid, recorded, spec.id)
                continue
            specs.append(spec)
            files[sid] = Path(recorded)
        applied = [self._with_overrides(journal, spec) for spec in specs]
        return [spec for spec, _ in applied], files, {spec.id for spec, dropped in applied if dropped}

    def _with_overrides(self, journal: Journal, spec: StrategyConfig) -> tuple[StrategyConfig, bool]:
        """Re-apply the parameters changed with `set` before the restart; True with the file's spec when they cannot be."""
        raw = journal.get_meta(OVERRIDES + spec.id)
        if not raw:
            return spec, False
        try:
            # Validated as `bot ctl set` validated them (a module's params by its Params).
            return changed_strategy(spec, orjson.loads(raw), self.loaded.catalog, spec.id), False
        except ConfigError as exc:  # the file changed under them
            self.logger.logger.error("[%s] runtime changes not re-applied: %s", spec.id, "; ".join(str(p) for p in exc.problems))
        except ValueError as exc:  # not JSON: a journal written by something else
            self.logger.logger.error("[%s] runtime changes not re-applied: %s", spec.id, exc)
        return spec, True

    @staticmethod
    def _check_fallback(journal: Journal, orchestrator: TradingOrchestrator) -> None:
        """A strategy loaded on its file's spec, its runtime changes dropped, must still read every symbol it holds something on.

        Otherwise it is not started on that spec (StrategyStateError): a pair leg on a symbol it
        no longer reads would have no stop checked, and its other leg would be managed alone.
        Its book stays in the journal untouched, so a restart once the file is fixed restores it.
        """
        unread = unread_holdings(journal, orchestrator)
        if unread:
            raise StrategyStateError(
                f"its runtime changes cannot be re-applied, and on its file's spec it would not read {', '.join(unread)}, where it "
                "holds positions or orders (their stops would go unchecked): fix the strategy file so the changes apply again "
                "(or write them into it), then restart; its positions, orders and changes stay in the journal"
            )

    def _announce_journal(self, journal: Journal, saved: dict[str, dict[str, Any]], resume: str | None) -> None:
        """One line saying whether the daemon resumes a journal (and what is in it) or starts a new one."""
        shown = format_path(self.loaded.base_dir / self.loaded.bot.journal.path)
        if not saved and not resume:
            self.logger.logger.info("new journal %s", shown)
            return
        positions = sum(len(journal.open_positions(sid)) for sid in saved)
        last = f"last candle {format_time(int(resume))}" if resume else "no candle processed yet"
        self.logger.logger.info(
            "resuming %s: %d %s, %d open %s, %s; bot run --fresh starts over",
            shown,
            len(saved),
            "strategy" if len(saved) == 1 else "strategies",
            positions,
            "position" if positions == 1 else "positions",
            last,
        )

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
                self.logger.logger.info("received %s%s", signal.Signals(signum).name, " (already stopping)" if self._stop.is_set() else "")
                self.request_stop()


def socket_path_of(loaded: LoadedConfig) -> Path:
    """Where the daemon of this config listens."""
    return (loaded.base_dir / loaded.bot.control.socket).resolve()
