"""Per-strategy counters, kept by the shared metrics service and attributed by strategy id."""
from __future__ import annotations

from typing import Any


class StrategyMetrics:
    """Counters of one strategy: candles processed, processing time, errors."""

    __slots__ = ("candles", "busy_ns", "max_ns", "errors")

    def __init__(self) -> None:
        self.candles = 0
        self.busy_ns = 0
        self.max_ns = 0
        self.errors = 0

    def record(self, elapsed_ns: int) -> None:
        """Count one processed candle and its processing time."""
        self.candles += 1
        self.busy_ns += elapsed_ns
        if elapsed_ns > self.max_ns:
            self.max_ns = elapsed_ns

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return {
            "candles": self.candles,
            "avg_us": (self.busy_ns / self.candles / 1000.0) if self.candles else 0.0,
            "max_us": self.max_ns / 1000.0,
            "errors": self.errors,
        }


class Metrics:
    """The shared metrics service: one StrategyMetrics per loaded strategy."""

    def __init__(self) -> None:
        self._strategies: dict[str, StrategyMetrics] = {}

    def for_strategy(self, strategy_id: str) -> StrategyMetrics:
        """The counters of a strategy, created on first use."""
        metrics = self._strategies.get(strategy_id)
        if metrics is None:
            metrics = self._strategies[strategy_id] = StrategyMetrics()
        return metrics

    def forget(self, strategy_id: str) -> None:
        """Drop an unloaded strategy's counters."""
        self._strategies.pop(strategy_id, None)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every strategy's counters."""
        return {sid: m.as_dict() for sid, m in sorted(self._strategies.items())}
