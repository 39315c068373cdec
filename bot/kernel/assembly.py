"""Builds a bot's shared services, orchestrator factory and strategy manager from a config, a mode and its seams."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from bot.bus import EventBus, Handler, HeldDelivery
from bot.candles.hub import CandleHub, HistoryObserver
from bot.clock import Clock, ReplayClock
from bot.config.models import BotConfig
from bot.log import BotLogger
from bot.metrics import Metrics
from bot.services import BotServices
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.delivery import Delivery, HandlerErrorHook
from bot.strategy.factory import OrchestratorFactory
from bot.strategy.manager import SettlingAccounts, StrategyManager, StreamRouter
from bot.trading.account import ExchangeGateway
from bot.trading.paper import PaperExchange
from bot.trading.risk import RiskManager

# replay: `bot replay` and the tests; paper: `bot run` trading on the paper exchange; live: orders to the exchange.
Mode = Literal["replay", "paper", "live"]
# Given the risk manager (whose daily tallies it journals), the hook that commits each event before delivery.
JournalHook = Callable[[RiskManager], Handler]
# Given the shared services, the router of every stream's candles and the seam of the books it needs.
RouterFactory = Callable[[BotServices], StreamRouter]
# Given the shared services and the manager's guarded seam for a handler's exception, the delivery that queues candles.
DeliveryFactory = Callable[[BotServices, HandlerErrorHook], Delivery]


@dataclass(frozen=True, slots=True)
class Seams:
    """What differs between a replay, a paper daemon and a live one; each None is the replay's part."""

    # None: the candle clock (event time from the candles); a live feed passes the wall clock.
    clock: Clock | None = None
    # None: the paper exchange.
    exchange: ExchangeGateway | None = None
    # Live: the gateway's accounts outlive an unload while orders of it are in flight.
    accounts: SettlingAccounts | None = None
    # Live: the relay the gateway (built before the bot) reports failed bookings through, to the manager.
    booking_faults: BookingFaults | None = None
    # None: direct delivery (the hub calls each orchestrator in turn).
    delivery: DeliveryFactory | None = None
    # None: no journal.
    journal: JournalHook | None = None
    # The daemon's strategy turns (bot.journal.turns): a turn's journalled events are delivered after its commit.
    turns: HeldDelivery | None = None
    # None: deliver_stream; the cluster's lockstep replay hands the strategies' part of each candle to workers.
    router: RouterFactory | None = None
    # Told of every candle the hub's history takes (the cluster's market-data outbox); None: nobody.
    candle_history: HistoryObserver | None = None
    # False lets a bus subscriber's exception propagate (tests: an assertion in a subscriber fails the test).
    isolate_subscribers: bool = True


@dataclass(frozen=True, slots=True)
class Bot:
    """A bot built by the kernel: shared services, the orchestrator factory and the strategy manager."""

    services: BotServices
    factory: OrchestratorFactory
    manager: StrategyManager


def build_services(config: BotConfig, logger: BotLogger | None = None, seams: Seams = Seams()) -> BotServices:
    """The shared services: clock, bus (with the journal hook), candle hub, risk, exchange gateway, metrics."""
    log = logger or BotLogger.to_stderr()
    clock = seams.clock
    candle_clock: ReplayClock | None = None
    if clock is None:
        clock = candle_clock = ReplayClock()

    # Built before the bus: the journal hook reads its tallies; each strategy's risk view announces the kill switch on the bus.
    risk = RiskManager(config.risk)
    before_delivery = None if seams.journal is None else seams.journal(risk)
    # Live: ts_init is the wall clock. Replay: no wall clock, so ts_init is the market time.
    bus = EventBus(
        clock,
        log.subscriber_failed if seams.isolate_subscribers else None,
        before_delivery,
        wall_clock=None if candle_clock is not None else clock,
        turns=seams.turns,
    )
    hub = CandleHub(
        bus, config.replay.history_size, None if candle_clock is None else candle_clock.advance_to, config.replay.log_candles, seams.candle_history
    )
    exchange = seams.exchange if seams.exchange is not None else PaperExchange()
    return BotServices(clock, bus, hub, log, risk, exchange, Metrics())


def build_bot(
    config: BotConfig, mode: Mode, seams: Seams = Seams(), logger: BotLogger | None = None, catalog: StrategyCatalog | None = None
) -> Bot:
    """Everything a run of `mode` trades with; refuses seams that do not fit the mode."""
    if mode == "live" and (seams.exchange is None or seams.accounts is None or seams.booking_faults is None or seams.clock is None):
        raise ValueError("mode live needs the live gateway (exchange, accounts and its booking faults) and the wall clock")
    if mode == "replay" and (seams.clock is not None or seams.delivery is not None):
        # Determinism: event time from the candles, each candle finished by all before the next.
        raise ValueError("a data-driven replay runs on the candle clock with direct delivery")
    if seams.router is not None and seams.delivery is not None:
        # A queued delivery wraps each route, so the router would take every trading candle for another stream's: no fills, no stops.
        raise ValueError("a stream router (the cluster's lockstep) needs direct delivery, not a queued one")
    services = build_services(config, logger, seams)
    router = None if seams.router is None else seams.router(services)
    factory = OrchestratorFactory(services, catalog, router)
    delivery_for = None if seams.delivery is None else partial(seams.delivery, services)
    manager = StrategyManager(services, factory, accounts=seams.accounts, delivery_for=delivery_for, booking_faults=seams.booking_faults, router=router)
    return Bot(services, factory, manager)
