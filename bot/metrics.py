"""Per-strategy counters, kept by the shared metrics service and attributed by strategy id."""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from bot.events import CandleClosed, CandleGap, Event, FeedState, OrderCancelled, OrderFilled, OrderRejected, OrderSubmitted

SAMPLES = 1_024
# Buckets of StrategyMetrics.histogram: by bit length of a time in ns (bucket 64 holds what 2**63 ns and more would be).
HISTOGRAM_BUCKETS = 65
# What Metrics.observe counts (the daemon subscribes it to these).
METRICS_EVENTS: tuple[type[Event], ...] = (CandleClosed, CandleGap, OrderSubmitted, OrderFilled, OrderCancelled, OrderRejected, FeedState)
ORDER_STATUS: dict[type[Event], str] = {OrderSubmitted: "submitted", OrderFilled: "filled", OrderCancelled: "cancelled", OrderRejected: "rejected"}


class StrategyMetrics:
    """Counters of one strategy: candles processed, processing time (with recent samples for p99), errors.

    The orchestrator updates them inline on its hot path (a method call per candle costs more
    than the bookkeeping itself).
    """

    __slots__ = ("busy_ns", "candles", "errors", "histogram", "max_ns", "samples")

    def __init__(self) -> None:
        self.candles = 0
        self.busy_ns = 0
        self.max_ns = 0
        self.errors = 0
        # The most recent processing times, bounded, for percentiles.
        self.samples: deque[int] = deque(maxlen=SAMPLES)
        # Every candle's processing time counted by its bit length: bucket i holds times of 2**(i-1) to 2**i - 1 ns
        # (one index and add per candle; Prometheus's histogram is read from it at scrape time).
        self.histogram = [0] * HISTOGRAM_BUCKETS

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


@dataclass(slots=True)
class StreamMetrics:
    """Counters of one candle stream (symbol, timeframe) as the daemon's hub took it."""

    candles: int = 0
    gaps: int = 0
    missing: int = 0
    # The newest candle's close time (ms), 0 before the first.
    last_close_ms: int = 0


class Metrics:
    """The shared metrics service: one StrategyMetrics per loaded strategy; in the daemon also per candle stream and orders per strategy."""

    def __init__(self) -> None:
        self._strategies: dict[str, StrategyMetrics] = {}
        self.streams: dict[tuple[str, str], StreamMetrics] = {}
        # (strategy, status) -> orders that reached it: submitted, filled, cancelled, rejected.
        self.orders: Counter[tuple[str, str]] = Counter()
        # Feed streams that went reconnecting, per symbol.
        self.reconnects: Counter[str] = Counter()

    def observe(self, event: Event) -> None:
        """A bus subscriber (the daemon's): count candles, gaps, orders and reconnects as they are announced."""
        if isinstance(event, CandleClosed):
            stream = self.streams.get((event.symbol, event.timeframe))
            if stream is None:
                stream = self.streams[(event.symbol, event.timeframe)] = StreamMetrics()
            stream.candles += 1
            stream.last_close_ms = event.ts
        elif isinstance(event, CandleGap):
            stream = self.streams.setdefault((event.symbol, event.timeframe), StreamMetrics())
            stream.gaps += 1
            stream.missing += event.missing
        elif isinstance(event, OrderSubmitted | OrderFilled | OrderCancelled | OrderRejected):
            self.orders[(event.strategy_id, ORDER_STATUS[type(event)])] += 1
        elif isinstance(event, FeedState) and event.state == "reconnecting" and event.symbol is not None:
            self.reconnects[event.symbol] += 1

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
