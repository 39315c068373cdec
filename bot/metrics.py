"""Per-strategy counters, kept by the shared metrics service and attributed by strategy id."""
from __future__ import annotations

from collections import deque
from typing import Any

SAMPLES = 1_024


class StrategyMetrics:
    """Counters of one strategy: candles processed, processing time (with recent samples for p99), errors.

    The orchestrator updates them inline on its hot path (a method call per candle costs more
    than the bookkeeping itself).
    """

    __slots__ = ("busy_ns", "candles", "errors", "max_ns", "samples")

    def __init__(self) -> None:
        self.candles = 0
        self.busy_ns = 0
        self.max_ns = 0
        self.errors = 0
        # The most recent processing times, bounded, for percentiles.
        self.samples: deque[int] = deque(maxlen=SAMPLES)

    def percentile_us(self, fraction: float) -> float:
        """A percentile of the recent processing times, in microseconds."""
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000.0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return {
            "candles": self.candles,
            "avg_us": (self.busy_ns / self.candles / 1000.0) if self.candles else 0.0,
            "p99_us": self.percentile_us(0.99),
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
