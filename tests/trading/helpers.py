"""Shared scenario driver for the trading tests: real services, hand-made candles, direct actions."""
from __future__ import annotations

import math
from typing import Any

from bot.config.models import BotConfig, StrategyConfig
from bot.events import PortfolioSnapshot
from bot.strategy.orchestrator import TradingOrchestrator
from bot.trading.actions import Action
from bot.trading.positions import Position
from tests.support import E, Rig, candles_from, strategy

SYMBOL = "BTC/USD"
MINUTE = 60_000
DAY = 86_400_000
T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z

# An ema_cross analyzer whose EMAs never warm up within a short test: it always scores 0, so
# nothing but the actions a test queues itself opens or closes a position.
QUIET_ANALYZERS: list[dict[str, Any]] = [{"type": "ema_cross", "params": {"fast": 50, "slow": 100}}]

Row = tuple[float, float, float, float]


def quiet(**overrides: Any) -> StrategyConfig:
    """A strategy that never signals by itself (no entries, no exit signals)."""
    base: dict[str, Any] = {"analyzers": QUIET_ANALYZERS, "exit_threshold": None, "quantity": 1.0}
    base.update(overrides)
    return strategy(**base)


def flat(price: float) -> Row:
    """A candle with open = high = low = close = price."""
    return (price, price, price, price)


class Session:
    """A Rig plus a minute counter so consecutive `bars` calls continue the same 1m tape."""

    def __init__(self, *specs: StrategyConfig, config: BotConfig | None = None, start_ts: int = T0) -> None:
        self.rig = Rig(config)
        self.rig.start(*specs)
        self.next_ts = start_ts

    def bars(self, *rows: Row) -> None:
        """Feed 1m candles (open, high, low, close) continuing from the last one fed."""
        candles = candles_from(list(rows), start_ts=self.next_ts, step_ms=MINUTE)
        self.next_ts += MINUTE * len(rows)
        self.rig.feed(SYMBOL, candles)

    def jump_to(self, ts: int) -> None:
        """Make the next candle start at `ts` (leaves a gap in the tape)."""
        assert ts >= self.next_ts
        self.next_ts = ts

    def orch(self, strategy_id: str = "s1") -> TradingOrchestrator:
        """The orchestrator of a loaded strategy."""
        return self.rig.manager.get(strategy_id)

    def act(self, *actions: Action, strategy_id: str = "s1") -> None:
        """Queue actions on a strategy's queue and drain it now, as the orchestrator would."""
        orchestrator = self.orch(strategy_id)
        for action in actions:
            orchestrator.actions.put(action)
        orchestrator.actions.drain()

    def position(self, strategy_id: str = "s1") -> Position:
        """The single open position of a strategy."""
        positions = list(self.orch(strategy_id).positions.positions.values())
        assert len(positions) == 1, positions
        return positions[0]

    def events(self, cls: type[E], strategy_id: str | None = "s1") -> list[E]:
        """Published events of one class for one strategy (None: market-wide events only)."""
        return [e for e in self.rig.events if isinstance(e, cls) and e.strategy_id == strategy_id]


def identity_holds(snapshot: PortfolioSnapshot) -> bool:
    """equity == start + realised - fees + unrealised, on a portfolio snapshot."""
    expected = snapshot.start + snapshot.realised - snapshot.fees + snapshot.unrealised
    return math.isclose(snapshot.equity, expected, rel_tol=1e-9, abs_tol=1e-6)
