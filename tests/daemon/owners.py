"""Candle owners the inbox tests hand to InboxDelivery in place of an orchestrator."""
from __future__ import annotations

from bot.events import StrategyStateChanged
from bot.journal import Journal
from bot.ohlcv import Candle


class TradingOnlyOwner:
    """An owner whose candles only trade: coalescing, history and the protecting route fail the test."""

    def __init__(self, strategy_id: str = "s1") -> None:
        self.strategy_id = strategy_id

    def catch_up(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        raise AssertionError("nothing is coalesced here")

    def on_history(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        raise AssertionError("no restart here")

    def protect(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        raise AssertionError("no protecting route here")


class JournallingOwner(TradingOnlyOwner):
    """A strategy that journals an event on every candle it handles."""

    def __init__(self, journal: Journal, strategy_id: str = "s") -> None:
        super().__init__(strategy_id)
        self.journal = journal
        self.handled: list[int] = []

    def handle(self, symbol: str, timeframe: str, candle: Candle, ts: int) -> None:
        self.handled.append(candle.ts)
        self.journal.record(StrategyStateChanged(len(self.handled), ts, ts, self.strategy_id, "active", "activated", None, None))
