"""OrchestratorFactory: builds one isolated orchestrator per strategy id and caches it until unload."""
from __future__ import annotations

from functools import partial
from typing import Any, Protocol

from bot.bus import StrategyPublisher
from bot.config.models import StrategyConfig
from bot.services import BotServices
from bot.strategy.base import Strategy, StrategyContext
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.guard import build
from bot.strategy.orchestrator import StrategyBuild, TradingOrchestrator
from bot.trading.risk import RiskView


class BookSeam(Protocol):
    """Chooses the publisher and risk view a strategy's book uses (the cluster's lockstep tapes them)."""

    def book(self, spec: StrategyConfig, publish: StrategyPublisher, risk: RiskView) -> tuple[StrategyPublisher, RiskView]:
        """The publisher and risk view its orchestrator gets, given its own."""
        ...


class OrchestratorFactory:
    """Get-or-create by strategy id: the same orchestrator until `evict`, with identity bound at build.

    Each orchestrator gets a publisher, logger, exchange account, risk view and metrics
    already bound to its strategy id, so it cannot emit an untagged event or act for another.
    """

    def __init__(self, services: BotServices, catalog: StrategyCatalog | None = None, books: BookSeam | None = None) -> None:
        self._services = services
        # None: each book publishes and books its risk straight (in process).
        self._books = books
        # Without a catalog only the built-in declarative strategy can be built.
        self.catalog = catalog if catalog is not None else StrategyCatalog()
        self._cache: dict[str, TradingOrchestrator] = {}

    def get_or_create(self, spec: StrategyConfig) -> TradingOrchestrator:
        """Return the cached orchestrator of `spec.id`, or build it."""
        cached = self._cache.get(spec.id)
        if cached is not None:
            return cached
        services = self._services
        sid = spec.id
        risk: RiskView = services.risk.bind(sid, spec.risk, spec.symbol, services.bus)
        publish = StrategyPublisher(services.bus, sid)
        if self._books is not None:
            publish, risk = self._books.book(spec, publish, risk)
        try:
            # What the strategy's constructor or subscriptions raise is its failure, reported as
            # one, never a crash of whoever was loading it.
            orchestrator = build(
                sid,
                TradingOrchestrator,
                spec,
                publish,
                services.logger.for_strategy(sid),
                partial(services.exchange.open_account, sid, spec.fees, spec.fill),
                risk,
                services.metrics.for_strategy(sid),
                self._build_strategy,
            )
        except BaseException:  # whatever ends the build, cancellation included: release what was bound for it
            services.risk.forget(sid)
            services.metrics.forget(sid)
            raise
        self._cache[sid] = orchestrator
        return orchestrator

    def _build_strategy(self, context: StrategyContext) -> Strategy[Any]:
        # The context's config, not the one loaded: a rebuild after `set` passes a new one.
        spec = context.spec
        return self.catalog.build(spec.module, spec.class_name, spec.params, context)

    def prepare(self, spec: StrategyConfig) -> StrategyBuild:
        """A new strategy object for the cached orchestrator of `spec.id`, not yet in use (TradingOrchestrator.prepare).

        KeyError when it is not cached; what the strategy's own code raises comes as StrategyError.
        """
        return build(spec.id, self._cache[spec.id].prepare, spec)

    def get(self, strategy_id: str) -> TradingOrchestrator | None:
        """The cached orchestrator of a strategy id, if any."""
        return self._cache.get(strategy_id)

    def __contains__(self, strategy_id: object) -> bool:
        return strategy_id in self._cache

    def ids(self) -> list[str]:
        """Cached strategy ids in load order."""
        return list(self._cache)

    def evict(self, strategy_id: str) -> None:
        """Drop a strategy from the cache and release what the shared services hold for it."""
        self._cache.pop(strategy_id, None)
        self._services.risk.forget(strategy_id)
        self._services.metrics.forget(strategy_id)
