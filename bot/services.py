"""BotServices: the one composition root that builds, starts and stops the shared services."""
from __future__ import annotations

from typing import Any, Protocol

from bot.bus import EventBus
from bot.events import KillSwitch
from bot.candles.hub import CandleHub
from bot.clock import Clock, ReplayClock
from bot.config.models import BotConfig
from bot.log import BotLogger
from bot.metrics import Metrics
from bot.trading.account import ExchangeGateway
from bot.trading.paper import PaperExchange
from bot.trading.risk import RiskManager


class Service(Protocol):
    """A shared service with an async lifecycle."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BotServices:
    """Everything shared by all strategies: clock, bus, candle hub, logger, risk, exchange gateway, metrics.

    Built once per process (by `bot replay` or the daemon) and passed down through
    constructors; there are no module-level singletons. `start` brings the services up in
    dependency order and `stop` takes them down in reverse.
    """

    def __init__(
        self,
        clock: Clock,
        bus: EventBus,
        hub: CandleHub,
        logger: BotLogger,
        risk: RiskManager,
        exchange: ExchangeGateway,
        metrics: Metrics,
    ) -> None:
        self.clock = clock
        self.bus = bus
        self.hub = hub
        self.logger = logger
        self.risk = risk
        self.exchange = exchange
        self.metrics = metrics
        self._lifecycle: tuple[Service, ...] = (risk, exchange)
        self._started: list[Service] = []

    @classmethod
    def for_replay(
        cls,
        config: BotConfig,
        logger: BotLogger | None = None,
        isolate_subscribers: bool = True,
        clock: Clock | None = None,
        exchange: ExchangeGateway | None = None,
    ) -> "BotServices":
        """Services for data-driven replay: candle clock, paper exchange, no network.

        `isolate_subscribers=False` lets a bus subscriber's exception propagate (tests use it so
        an assertion inside a subscriber fails the test). With `clock` (the wall clock of a live
        feed) event time comes from it and candles no longer move the clock. With `exchange` (the
        live gateway) orders go to it instead of the paper exchange.
        """
        log = logger or BotLogger.to_stderr()
        candle_clock: ReplayClock | None = None
        if clock is None:
            clock = candle_clock = ReplayClock()
        # Live: ts_init is the wall clock. Replay: no wall clock, so ts_init is the market time.
        bus = EventBus(clock, log.subscriber_failed if isolate_subscribers else None, wall_clock=None if candle_clock is not None else clock)
        hub = CandleHub(bus, config.replay.history_size, None if candle_clock is None else candle_clock.advance_to, config.replay.log_candles)
        def announce_kill_switch(payload: dict[str, Any]) -> None:
            bus.publish(KillSwitch, None, payload["daily_loss"], payload["limit"], payload["currency"], payload["tripped_by"])

        risk = RiskManager(config.risk, announce_kill_switch)
        return cls(clock, bus, hub, log, risk, exchange if exchange is not None else PaperExchange(), Metrics())

    async def start(self) -> None:
        """Start services in order; on a failure, stop those already started and re-raise."""
        for service in self._lifecycle:
            try:
                await service.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(service)

    async def stop(self) -> None:
        """Stop started services in reverse order, then close the bus's streams."""
        while self._started:
            await self._started.pop().stop()
        self.bus.close()
