"""Mode "live" in the daemon: the ccxt execution gateway, run in the daemon's task group and reconciled before trading."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import anyio
from anyio.abc import TaskGroup

from bot.bus import EventBus
from bot.clock import Clock
from bot.config.exchange import ExchangeConfig
from bot.live.backoff import Backoff
from bot.live.errors import ExchangeSetupError
from bot.live.exchange import build_exchange
from bot.live.execution import CommitGate, LiveExchange
from bot.live.markets import MarketsAtStart
from bot.live.reconcile import Reconciler, ReconcileReport
from bot.live.stop_wait import OrdersOnTheirWay
from bot.strategy.booking_faults import BookingFaults
from bot.strategy.manager import StrategyManager


class LiveTrading:
    """Owns the live gateway's exchange connection: built from the exchange section, keys from the environment."""

    def __init__(
        self, config: ExchangeConfig, env: Mapping[str, str], clock: Clock, logger: logging.Logger, faults: BookingFaults, turns: CommitGate | None = None
    ) -> None:
        if config.api_key_env is None or config.secret_env is None:
            raise ExchangeSetupError("mode live trades with your account: set exchange.api_key_env and exchange.secret_env")
        self._exchange, self.redact = build_exchange(config, env, streaming=False)
        # A strategy whose fill cannot be booked is failed by the strategy manager built with `faults`.
        # With `turns`, an order decided in a strategy's turn is sent only once the turn is journalled.
        self.gateway = LiveExchange(self._exchange, config.execution, clock, logger, redact=self.redact, on_error=faults.report, commits=turns)
        self._log = logger
        execution = config.execution
        self._markets = MarketsAtStart(
            self._exchange, config.start_timeout_s,
            lambda: Backoff(execution.retry_min_s, max(execution.retry_min_s, execution.retry_max_s)),
            logger, redact=self.redact,
        )

    async def start(self, tg: TaskGroup, manager: StrategyManager) -> None:
        """Load the markets, then run the gateway in `tg`; `manager` settles its unloaded strategies.

        The markets are retried for at most exchange.start_timeout_s while the exchange cannot be
        reached (then ExchangeUnreachable; `problems` says why meanwhile): the gateway's own
        loading would retry forever. Unloaded strategies whose orders were in flight are settled
        at every poll interval.
        """
        await self._markets.load()
        await tg.start(self.gateway.run)
        tg.start_soon(settle_unloaded, manager, self.gateway.settings.poll_interval_s)

    def problems(self) -> list[str]:
        """The exchange not answering while the start loads its markets (empty otherwise)."""
        return [self._markets.problem] if self._markets.problem is not None else []

    async def reconcile(self, manager: StrategyManager, bus: EventBus, symbols: Iterable[str]) -> ReconcileReport:
        """Bring the restored strategies in line with the exchange; raises when the exchange cannot be asked."""
        managers = {sid: manager.get(sid).positions for sid in manager.ids()}
        return await Reconciler(self.gateway, managers, bus, self._log).run(symbols)

    async def finish_orders(self, manager: StrategyManager, bound_s: float, hurry: anyio.Event) -> list[str]:
        """At a graceful stop, before `close`: wait at most `bound_s` (less once `hurry` is set) for the orders on their
        way and the unloads settling (settled as soon as their orders are done); return what is still on its way."""
        return await OrdersOnTheirWay(self.gateway, manager, self._log).wait(bound_s, hurry)

    async def close(self) -> None:
        """Stop tracking and close the connection (orders resting on the exchange stay there)."""
        with anyio.CancelScope(shield=True):
            await self.gateway.stop()
            await self._exchange.close()


async def settle_unloaded(manager: StrategyManager, interval_s: float) -> None:
    """Every `interval_s`, close the gateway accounts of unloaded strategies whose orders in flight have all had their outcome."""
    while True:
        await anyio.sleep(interval_s)
        manager.settle()
