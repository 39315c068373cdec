"""The daemon's start-up phases, in order: open the journal, restore, (the kernel builds the services), build and
start the feed, load, reconcile (live), activate; and the orderly stop."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from bot.bus import EventBus
from bot.candles.hub import CandleHub
from bot.candles.sources import CandleSource
from bot.config.models import StrategyConfig
from bot.daemon import heap
from bot.daemon.delivery import InboxDelivery
from bot.daemon.event_lines import GapLines
from bot.daemon.feed import Pacer
from bot.daemon.feed_position import FeedPosition
from bot.daemon.live_feed import DaemonFeed, LiveFeed, PlayedFeed
from bot.daemon.recovery import (
    ADDED_SYMBOL,
    FEED_POSITION,
    KILL_SWITCH,
    OVERRIDES,
    STRATEGY_FILE,
    DailyTallies,
    mark_at_last_close,
    restore_orchestrator,
    tripped_currency,
    unread_holdings,
)
from bot.errors import BotError, ConfigError, StrategyStateError
from bot.event_codec import payload_json
from bot.events import Event, FeedState, KillSwitch, PositionClosed, PositionOpened, PositionReduced
from bot.fmt import format_fields, format_path, format_time
from bot.journal import Journal
from bot.journal.lock import JournalLock
from bot.journal.records import JournalledState
from bot.journal.sqlite import CARRIED_ORDERS, CARRIED_POSITIONS
from bot.journal.turns import Turns
from bot.services import BotServices
from bot.strategy.config_load import LoadedConfig, changed_strategy, load_strategy
from bot.strategy.manager import StrategyManager
from bot.strategy.orchestrator import TradingOrchestrator
from bot.symbols import shown, symbol_problem
from bot.trading.risk import RiskManager

if TYPE_CHECKING:
    from bot.daemon.live_trading import LiveTrading

# Events whose fill books PnL or fees into the risk manager's daily tallies.
_BOOKING_EVENTS = (PositionOpened, PositionReduced, PositionClosed)


# -- open journal ---------------------------------------------------------------------------------
def open_journal(loaded: LoadedConfig, lock: JournalLock | None = None) -> Journal:
    """The config's journal, its lock taken (or `lock`, already held): a second daemon on it is refused here."""
    return Journal(loaded.base_dir / loaded.bot.journal.path, lock=lock)


class JournalRecorder:
    """The bus's before-delivery hook: every event is committed to the journal before any subscriber hears of it."""

    def __init__(self, journal: Journal, risk: RiskManager, log: logging.Logger) -> None:
        self._journal = journal
        self._tallies = DailyTallies(journal, risk, log)

    def __call__(self, event: Event) -> None:
        """Record the event, then what must survive a restart with it (the kill switch, the daily tallies)."""
        self._journal.record(event)
        if isinstance(event, KillSwitch):  # market-wide, but it must survive a restart
            self._journal.set_meta(KILL_SWITCH, payload_json(event).decode())
        elif isinstance(event, _BOOKING_EVENTS):
            # The daily-loss limits must hold across a restart too.
            self._tallies.record(event.strategy_id)


# -- restore --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Restored:
    """What the journal says to resume from: each strategy's saved state row, and the feed's last processed close."""

    saved: dict[str, JournalledState]
    resume_close: int | None


def restore(loaded: LoadedConfig, journal: Journal, services: BotServices, log: logging.Logger) -> Restored:
    """Re-engage a journalled kill switch, take back the currencies' daily tallies, and say what is resumed."""
    tripped = journal.get_meta(KILL_SWITCH)
    if tripped:
        services.risk.engage(tripped_currency(tripped))
        log.warning("kill switch still engaged from before the restart (bot ctl risk-reset releases it)")
    DailyTallies(journal, services.risk, log).restore_currencies()
    saved = journal.strategy_states()  # read before loading announces fresh states
    resume = resume_close_of(journal)
    _announce_journal(loaded, journal, saved, resume, log)
    return Restored(saved, resume)


def resume_close_of(journal: Journal) -> int | None:
    """The close of the last candle every strategy had processed before this start (None: a new journal)."""
    resume = journal.get_meta(FEED_POSITION)
    return int(resume) if resume else None


def _announce_journal(loaded: LoadedConfig, journal: Journal, saved: dict[str, JournalledState], resume: int | None, log: logging.Logger) -> None:
    """One line saying whether the daemon resumes a journal (and what is in it) or starts a new one."""
    path = format_path(loaded.base_dir / loaded.bot.journal.path)
    if not saved and not resume:
        log.info("new journal %s", path)
        return
    positions = sum(len(journal.open_positions(sid)) for sid in saved)
    last = f"last candle {format_time(resume)}" if resume else "no candle processed yet"
    log.info(
        "resuming %s: %d %s, %d open %s, %s; bot run --fresh starts over",
        path,
        len(saved),
        "strategy" if len(saved) == 1 else "strategies",
        positions,
        "position" if positions == 1 else "positions",
        last,
    )


# -- build and start the feed ---------------------------------------------------------------------
def build_feed(
    loaded: LoadedConfig,
    services: BotServices,
    delivery: InboxDelivery,
    position: FeedPosition,
    sources: list[CandleSource],
    exchange: tuple[Any, Any] | None,
    resume_close: int | None,
    on_fatal: Callable[[str], None],
    pacer: Pacer | None,
) -> DaemonFeed:
    """The live feed on `exchange` (the connection and its redactor), else the recorded `sources` played on the clock.

    Each published candle moves the journalled feed `position` once every strategy has processed
    what was published: a restart resumes after it.
    """
    config = loaded.bot
    log = services.logger.logger
    if exchange is not None:
        assert config.exchange is not None
        return LiveFeed(
            exchange[0],
            config.exchange.feed,
            services.hub,
            services.bus,
            log,
            redact=exchange[1],
            resume_after=resume_close,
            on_published=position.published,
            on_fatal=on_fatal,
            start_timeout_s=config.exchange.start_timeout_s,
        )

    def announce_feed(feed_state: str, info: dict[str, Any]) -> None:
        detail = dict(info)
        # One symbol's trouble (a bad row in an added file) is that symbol's feed state.
        symbol = detail.pop("symbol", None)
        services.bus.publish(FeedState, None, feed_state, detail, symbol)

    for source in sources:
        services.hub.add_feed(source.symbol, source.timeframe)
    return PlayedFeed(
        sources,
        services.hub,
        config.feed.speed,
        config.feed.loop,
        config.feed.backfill,
        announce_feed,
        resume_after=resume_close,
        on_published=position.published,
        pacer=pacer,
        processed=delivery.drain,
    )


def add_journalled_symbols(journal: Journal, feed: DaemonFeed, hub: CandleHub, now_ms: int, log: logging.Logger) -> dict[str, dict[str, str]]:
    """Add again the symbols added at runtime before a restart; one that is not a symbol is dropped from the journal."""
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


# -- load -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ToLoad:
    """The strategies to load at start: their specs, their files, and the ids whose runtime changes could not be re-applied."""

    specs: list[StrategyConfig]
    files: dict[str, Path]
    on_file_spec: set[str]


def strategies_to_load(loaded: LoadedConfig, journal: Journal, saved: dict[str, JournalledState], log: logging.Logger) -> ToLoad:
    """The config's enabled strategies, plus those loaded at runtime before a restart (from their files), with their runtime changes."""
    specs = list(loaded.enabled_strategies())
    files: dict[str, Path] = {spec.id: loaded.strategy_files[spec.id].resolve() for spec in specs}
    in_config = {spec.id for spec in loaded.strategies}
    for sid, row in saved.items():
        # A strategy the config lists but disables stays off; an unloaded one stays unloaded.
        if sid in files or sid in in_config or row.state == "unloaded":
            continue
        recorded = journal.get_meta(STRATEGY_FILE + sid)
        if not recorded:
            log.warning("[%s] journalled but no strategy file is known: not restored", sid)
            continue
        try:
            spec = load_strategy(Path(recorded), loaded.bot, str(loaded.path), catalog=loaded.catalog)
        except ConfigError as exc:
            log.error("[%s] not restored: %s", sid, exc)
            continue
        if spec.id != sid or spec.id in files:
            log.error("[%s] not restored: its file %s now holds strategy %r", sid, recorded, spec.id)
            continue
        specs.append(spec)
        files[sid] = Path(recorded)
    applied = [_with_overrides(loaded, journal, spec, log) for spec in specs]
    return ToLoad([spec for spec, _ in applied], files, {spec.id for spec, dropped in applied if dropped})


def _with_overrides(loaded: LoadedConfig, journal: Journal, spec: StrategyConfig, log: logging.Logger) -> tuple[StrategyConfig, bool]:
    """Re-apply the parameters changed with `set` before the restart; True with the file's spec when they cannot be."""
    raw = journal.get_meta(OVERRIDES + spec.id)
    if not raw:
        return spec, False
    try:
        # Validated as `bot ctl set` validated them (a module's params by its Params).
        return changed_strategy(spec, orjson.loads(raw), loaded.catalog, spec.id), False
    except ConfigError as exc:  # the file changed under them
        log.error("[%s] runtime changes not re-applied: %s", spec.id, "; ".join(str(p) for p in exc.problems))
    except ValueError as exc:  # not JSON: a journal written by something else
        log.error("[%s] runtime changes not re-applied: %s", spec.id, exc)
    return spec, True


def load_strategies(
    to_load: ToLoad, saved: dict[str, JournalledState], manager: StrategyManager, risk: RiskManager, journal: Journal, log: logging.Logger
) -> list[StrategyConfig]:
    """Load each strategy dormant, its journalled book restored; one that cannot be is left out (its journal kept). Returns those loaded."""
    tallies = DailyTallies(journal, risk, log)
    loaded_specs = []
    # Numbers a journal moved aside by `run --fresh` used: a strategy new to this journal goes on after them.
    carried = journal.meta_with_prefix(CARRIED_ORDERS).keys() | journal.meta_with_prefix(CARRIED_POSITIONS).keys()
    for spec in to_load.specs:
        try:
            orchestrator = manager.load(spec, announce=spec.id not in saved)
            if spec.id in to_load.on_file_spec:
                _check_fallback(journal, orchestrator)
            journal.set_meta(STRATEGY_FILE + spec.id, str(to_load.files[spec.id]))
            if spec.id in saved:
                restored = restore_orchestrator(journal, orchestrator)
                tallies.restore_strategy(spec.id)
                log.info("[%s] restored from the journal: %s", spec.id, format_fields(restored))
            elif spec.id in carried:
                orchestrator.positions.restore([], [], journal.last_order_number(spec.id), journal.last_position_number(spec.id))
        except (BotError, ValueError, KeyError) as exc:  # one strategy's problem stays its own
            log.error("[%s] not loaded (its journalled state is kept): %s", spec.id, exc)
            if spec.id in manager.ids():
                manager.discard(spec.id)
            continue
        loaded_specs.append(spec)
    return loaded_specs


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


# -- reconcile (live) -----------------------------------------------------------------------------
async def reconcile(live: LiveTrading, manager: StrategyManager, bus: EventBus, symbols: tuple[str, ...]) -> None:
    """Fix the journal from the exchange before any strategy trades; no trading when the exchange cannot be asked."""
    from bot.live.errors import ExchangeFailure, ExchangeSetupError, describe

    try:
        await live.reconcile(manager, bus, symbols)
    except ExchangeFailure as exc:
        raise ExchangeSetupError(f"reconciliation with the exchange failed, not trading: {describe(exc, live.redact)}") from None


# -- activate -------------------------------------------------------------------------------------
def activate(loaded_specs: list[StrategyConfig], saved: dict[str, JournalledState], manager: StrategyManager, hub: CandleHub, log: logging.Logger) -> None:
    """Once the feed's backfill is in: mark restored positions, put each strategy back in its journalled state (a new one is activated)."""
    for spec in loaded_specs:
        if spec.id in saved:
            mark_at_last_close(manager.get(spec.id), hub)
    for spec in loaded_specs:
        row = saved.get(spec.id)
        if row is not None and row.state == "unloaded":
            row = None  # unloaded at runtime; the config enables it: start it afresh
        try:
            if row is None:
                manager.activate(spec.id)
            else:
                manager.restore_state(spec.id, row.state, row.policy, row.last_error)
        except BotError as exc:  # one strategy's failure stays its own
            log.error("%s", exc)
    heap.settle()


# -- stop -----------------------------------------------------------------------------------------
async def stop_trading(
    feed: DaemonFeed,
    delivery: InboxDelivery,
    gap_lines: GapLines,
    manager: StrategyManager,
    services: BotServices,
    journal: Journal,
    turns: Turns,
    finish_orders: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Stop the feed, let every strategy finish its queued candles (10 s at most) and every turn its commit, delivery and
    sends, then (live) the orders on their way theirs (`finish_orders`, bounded), journal an equity snapshot of each."""
    services.logger.logger.info("stopping: feed, then queued candles")
    feed.stop()
    with anyio.move_on_after(10):
        await delivery.drain()
    # No lane opens a turn after this: what it had not taken stays for the restart.
    await delivery.stop()
    # Not bounded: the writer thread commits each of them (or fails it) without waiting on anything.
    await turns.idle()
    if finish_orders is not None:
        # Before the gateway stops: a close held behind its stop's cancel would otherwise never go out.
        await finish_orders()
    gap_lines.flush()
    journal.snapshot_equities(services.clock.now_ms(), [(sid, manager.get(sid).portfolio.record()) for sid in manager.ids()])
