"""BotServices: the shared services of one process, started and stopped in dependency order."""
from __future__ import annotations

from typing import Protocol

from bot.bus import EventBus
from bot.candles.hub import CandleHub
from bot.clock import Clock
from bot.log import BotLogger
from bot.metrics import Metrics
from bot.trading.account import ExchangeGateway
from bot.trading.risk import RiskManager


class Service(Protocol):
    """A shared service with an async lifecycle."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BotServices:
    """Everything shared by all strategies: clock, bus, candle hub, logger, risk, exchange gateway, metrics.

    Built once per process by the kernel (bot/kernel) and passed down through constructors;
    there are no module-level singletons. `start` brings the services up in
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
