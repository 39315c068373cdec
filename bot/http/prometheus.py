"""`/metrics`: the daemon's figures in Prometheus's text format, read at scrape time from its metrics objects and the control commands.

A registry of its own per daemon (never prometheus-client's global one). No order id, timestamp or other
unbounded value is ever a label: strategies, symbols, timeframes, states, currencies and sides are.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from bot.config.currency import quote_currency
from bot.control.commands import Control, run_command
from bot.metrics import HISTOGRAM_BUCKETS
from bot.strategy.lifecycle import STATES
from bot.version import bot_version

# The decision histogram's buckets: powers of two of nanoseconds, from about 1 µs (2**10) to about 17 s (2**34).
_FIRST_BUCKET, _LAST_BUCKET = 10, 34


class BotCollector(Collector):
    """Reads one daemon's figures at each scrape."""

    def __init__(self, control: Control, exchange: str) -> None:
        self._control = control
        # The exchange label of feed reconnects: the live feed's exchange, or "paper" for recorded candles.
        self._exchange = exchange

    def collect(self) -> Iterator[Metric]:
        """Every family, built afresh from the daemon's state now."""
        daemon = self._control.daemon
        status = run_command(self._control, "status", {})
        build = GaugeMetricFamily("bot_build_info", "The bot's version.", labels=["version"])
        build.add_metric([bot_version()], 1)
        yield build
        yield GaugeMetricFamily("bot_health", "1 while the daemon's health is ok, 0 while degraded.", value=1 if status["health"] == "ok" else 0)
        yield GaugeMetricFamily("bot_kill_switch", "1 while the kill switch is engaged (a global daily loss limit reached: no new entries).",
                                value=1 if status["kill_switch"] else 0)
        feed = GaugeMetricFamily("bot_feed_info", "Where the daemon's candles come from: recorded (a replay's clock) or ccxt (live).", labels=["source"])
        feed.add_metric([str(status["feed"].get("source", "recorded"))], 1)
        yield feed
        yield from self._streams()
        yield from self._strategies(status["strategies"])
        orders = CounterMetricFamily("bot_orders", "Orders per strategy by what became of them, since the daemon started.", labels=["strategy", "status"])
        for (sid, state), count in sorted(daemon.services.metrics.orders.items()):
            orders.add_metric([sid, state], count)
        yield orders
        reconnects = CounterMetricFamily("bot_exchange_reconnects", "Times a live feed's stream went reconnecting, since the daemon started.", labels=["exchange"])
        reconnects.add_metric([self._exchange], sum(daemon.services.metrics.reconnects.values()))
        yield reconnects

    def _streams(self) -> Iterator[Metric]:
        candles = CounterMetricFamily("bot_candles", "Candles the hub took per stream, since the daemon started.", labels=["symbol", "timeframe"])
        gaps = CounterMetricFamily("bot_candle_gaps", "Gaps in a stream's candles, since the daemon started.", labels=["symbol", "timeframe"])
        last = GaugeMetricFamily("bot_feed_last_candle_timestamp_seconds", "Close time of the newest candle per stream.", labels=["symbol", "timeframe"])
        for (symbol, timeframe), stream in sorted(self._control.daemon.services.metrics.streams.items()):
            candles.add_metric([symbol, timeframe], stream.candles)
            gaps.add_metric([symbol, timeframe], stream.gaps)
            if stream.last_close_ms:
                last.add_metric([symbol, timeframe], stream.last_close_ms / 1000.0)
        yield candles
        yield gaps
        yield last

    def _strategies(self, rows: dict[str, dict[str, object]]) -> Iterator[Metric]:
        manager = self._control.daemon.manager
        # The inboxes' figures straight from the delivery (the metrics command also sorts each strategy's samples for its percentiles).
        delivery_stats = getattr(manager.delivery, "stats", None)
        state = GaugeMetricFamily("bot_strategy_state", "1 for the state each strategy is in, 0 for the others.", labels=["strategy", "state"])
        decision = HistogramMetricFamily("bot_strategy_decision_seconds", "Processing time of each candle a strategy handled.", labels=["strategy"])
        depth = GaugeMetricFamily("bot_strategy_inbox_depth", "Candles queued for a strategy.", labels=["strategy"])
        overruns = CounterMetricFamily("bot_strategy_overruns", "Times a strategy's inbox overflowed and coalesced.", labels=["strategy"])
        errors = CounterMetricFamily("bot_strategy_errors", "Errors a strategy's code raised.", labels=["strategy"])
        equity = GaugeMetricFamily("bot_strategy_equity", "A strategy's equity, in its quote currency.", labels=["strategy", "currency"])
        realized = GaugeMetricFamily("bot_strategy_realized_pnl", "A strategy's realised profit and loss, in its quote currency.", labels=["strategy", "currency"])
        held = GaugeMetricFamily("bot_strategy_position_quantity", "Open quantity per strategy, symbol and side.", labels=["strategy", "symbol", "side"])
        for sid in sorted(rows):
            orchestrator = manager.get(sid)
            for name in STATES:
                state.add_metric([sid, name], 1 if orchestrator.state == name else 0)
            metrics = orchestrator.metrics
            counts = metrics.histogram
            buckets: list[tuple[str, float]] = []
            below = sum(counts[:_FIRST_BUCKET + 1])
            for bit in range(_FIRST_BUCKET, _LAST_BUCKET + 1):
                if bit > _FIRST_BUCKET:
                    below += counts[bit]
                buckets.append((repr(2**bit / 1e9), below))
            buckets.append(("+Inf", sum(counts[: HISTOGRAM_BUCKETS])))
            decision.add_metric([sid], buckets, metrics.busy_ns / 1e9)
            figure = delivery_stats(orchestrator) if delivery_stats is not None else {}
            depth.add_metric([sid], figure.get("inbox_depth", 0))
            overruns.add_metric([sid], figure.get("overruns", 0))
            errors.add_metric([sid], metrics.errors)
            currency = quote_currency(orchestrator.symbol)
            equity.add_metric([sid, currency], orchestrator.portfolio.equity)
            realized.add_metric([sid, currency], orchestrator.portfolio.realised)
            quantities: dict[tuple[str, str], float] = defaultdict(float)
            for position in orchestrator.positions.positions.values():
                quantities[(position.symbol, position.side)] += position.quantity
            for (symbol, side), quantity in sorted(quantities.items()):
                held.add_metric([sid, symbol, side], quantity)
        yield from (state, decision, depth, overruns, errors, equity, realized, held)


def metrics_registry(control: Control, exchange: str) -> CollectorRegistry:
    """A registry of this daemon's own, its collector registered."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BotCollector(control, exchange))
    return registry
