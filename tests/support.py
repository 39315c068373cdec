"""Builders shared by the tests: real configs, services and strategies, no mocks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
import pytest

from bot.bus import HeldDelivery
from bot.config.loader import deep_merge
from bot.config.models import BotConfig, StrategyConfig
from bot.events import Event
from bot.kernel import Seams, build_bot
from bot.log import BotLogger
from bot.ohlcv import Candle
from bot.strategy.catalog import StrategyCatalog
from bot.strategy.declarative import DeclarativeStrategy
from bot.strategy.lifecycle import StrategyState
from bot.strategy.orchestrator import TradingOrchestrator
from bot.trading.account import ExchangeGateway

REPO = Path(__file__).resolve().parents[1]
# The two-strategy declarative setup (ema_cross + rsi_reversion on BTC/USD) that tests build on;
# the repository's config.json runs the whole catalog instead.
BASIC_CONFIG = REPO / "tests" / "basic_config.json"
E = TypeVar("E", bound=Event)
SHARED_DATA = REPO.parent / "shared" / "data"
BTC_1M = SHARED_DATA / "BTC-USD-PERP_1m.csv"
ETH_1M = SHARED_DATA / "ETH-BTC_1m.csv"
ETH_5M = SHARED_DATA / "ETH-BTC_5m.csv"


def strategy(**overrides: Any) -> StrategyConfig:
    """A valid ema_cross strategy config on BTC/USD 1m, with `overrides` deep-merged in."""
    base: dict[str, Any] = {
        "id": "s1",
        "symbol": "BTC/USD",
        "timeframe": "1m",
        "quantity": 0.1,
        "analyzers": [{"type": "ema_cross", "params": {"fast": 3, "slow": 6}}],
    }
    return StrategyConfig.model_validate(deep_merge(base, overrides))


class Rig:
    """Services, factory and manager wired for a replay, with a list of every published event."""

    def __init__(
        self,
        config: BotConfig | None = None,
        feeds: dict[str, str] | None = None,
        catalog: StrategyCatalog | None = None,
        exchange: ExchangeGateway | None = None,
        turns: HeldDelivery | None = None,
    ) -> None:
        bot = build_bot(
            config or BotConfig(),
            "replay",
            Seams(exchange=exchange, isolate_subscribers=False, turns=turns),
            BotLogger.to_stderr(level=50, name="bot.tests"),
            catalog,
        )
        self.services = bot.services
        self.factory = bot.factory
        self.manager = bot.manager
        self.events: list[Event] = []
        self.services.bus.subscribe(self.events.append)
        for symbol, timeframe in (feeds or {"BTC/USD": "1m"}).items():
            self.services.hub.add_feed(symbol, timeframe)

    def start(self, *specs: StrategyConfig) -> None:
        """Load and activate strategies."""
        for spec in specs:
            self.manager.load(spec)
            self.manager.activate(spec.id)

    def feed(self, symbol: str, candles: list[Candle]) -> None:
        """Push candles through the hub, as replay does."""
        for candle in candles:
            self.services.hub.ingest(symbol, candle)

    def of_type(self, cls: type[E], strategy_id: str | None = None) -> list[E]:
        """Published events of one class (and strategy)."""
        return [e for e in self.events if isinstance(e, cls) and (strategy_id is None or e.strategy_id == strategy_id)]

    def routed_to(self, symbol: str, timeframe: str) -> list[str]:
        """Ids of the strategies the manager hands this stream's candles to for trading, in its order.

        Read from the manager's routing table: only tests ask it (the bot routes, it never asks).
        """
        return [orchestrator.strategy_id for orchestrator, _ in self.manager._active.get((symbol, timeframe), ())]


def approx_float(expected: float, *, rel: float | None = None, abs: float | None = None) -> float:
    """pytest.approx(expected) where a float is typed: in a tuple, list or record an assertion compares whole.

    pytest types it Approx[float], which mypy's strict equality finds disjoint from float once nested in a
    container (and a record's float field refuses it); at run time it is the same object, equal to floats near `expected`.
    """
    return cast(float, pytest.approx(expected, rel=rel, abs=abs))


def without_seq(event: E) -> E:
    """The event with its bus sequence number zeroed: what it says, not where it fell among other strategies' events."""
    return msgspec.structs.replace(event, seq=0)


def declarative(orchestrator: TradingOrchestrator) -> DeclarativeStrategy:
    """The orchestrator's strategy, one built from a declarative file (whose analyzers a test can replace)."""
    built = orchestrator.strategy
    assert isinstance(built, DeclarativeStrategy), built
    return built


def state_of(orchestrator: TradingOrchestrator) -> StrategyState:
    """Its lifecycle state, read afresh (mypy keeps `orchestrator.state` narrowed by an earlier assert across the calls that change it)."""
    return orchestrator.state


def repo_catalog() -> StrategyCatalog:
    """The strategies found in the repository's strategies/ folder (what config.json uses)."""
    return StrategyCatalog.discover([REPO / "strategies"])


def module_strategy(module: str, **overrides: Any) -> StrategyConfig:
    """A config of strategy module `module` on BTC/USD 1m, quantity 0.1, with `overrides` deep-merged in."""
    base: dict[str, Any] = {"id": module, "module": module, "symbol": "BTC/USD", "timeframe": "1m", "quantity": 0.1}
    return StrategyConfig.model_validate(deep_merge(base, overrides))


def candles_from(rows: list[tuple[float, float, float, float]], start_ts: int = 1_640_995_200_000, step_ms: int = 60_000) -> list[Candle]:
    """Hand-made candles from (open, high, low, close) rows, one minute apart, volume 1."""
    return [Candle(start_ts + i * step_ms, o, h, l, c, 1.0) for i, (o, h, l, c) in enumerate(rows)]
