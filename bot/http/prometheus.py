"""`/metrics`: the daemon's figures in Prometheus's text format, read at scrape time from its metrics objects and the control commands.

A registry of its own per daemon (never prometheus-client's global one). No order id, timestamp or other
unbounded value is ever a label: strategies, symbols, timeframes, states, currencies and sides are.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from bot.config.currency import quote_currency
from bot.control.commands import Control, call_command
from bot.daemon.read_slices import ReadSlices
from bot.errors import UnknownStrategyError
from bot.metrics import HISTOGRAM_BUCKETS
from bot.version import bot_version

# The decision histogram's buckets: powers of four of nanoseconds, from about 1 µs (2**10) to about 17 s (2**34): 13 bounds, so
# a thousand strategies' histograms stay at 16,000 series; the bot's own histogram (bit lengths) gives each bound exactly.
_BUCKET_BITS = tuple(range(10, 35, 2))
_BOUNDS = tuple(repr(2**bit / 1e9) for bit in _BUCKET_BITS)
# Samples of one family written out in one slice of the loop.
_SAMPLES_PER_SLICE = 400


class BotCollector(Collector):
    """Reads one daemon's figures at each scrape: `read` (in slices of the loop) refreshes what `collect` returns."""

    def __init__(self, control: Control, exchange: str) -> None:
        self._control = control
        # The exchange label of feed reconnects: the live feed's exchange, or "paper" for recorded candles.
        self._exchange = exchange
        # What the last read found (nothing before the first scrape).
        self._families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        """The families the last `read` built (until `forget`)."""
        return iter(self._families)

    def forget(self) -> None:
        """Drop what the last read built (a scrape that wrote it out)."""
        self._families = []

    async def read(self, slices: ReadSlices) -> None:
        """Every family, built afresh from the daemon's state now, a few strategies per slice (bot.daemon.read_slices)."""
        daemon = self._control.daemon
        status = await call_command(self._control, "status", {})
        build = GaugeMetricFamily("bot_build_info", "The bot's version.", labels=["version"])
        build.add_metric([bot_version()], 1)
        families: list[Metric] = [build]
        families.append(GaugeMetricFamily("bot_health", "1 while the daemon's health is ok, 0 while degraded.", value=1 if status["health"] == "ok" else 0))
        families.append(GaugeMetricFamily("bot_kill_switch", "1 while the kill switch is engaged (a global daily loss limit reached: no new entries).",
                                          value=1 if status["kill_switch"] else 0))
        feed = GaugeMetricFamily("bot_feed_info", "Where the daemon's candles come from: recorded (a replay's clock) or ccxt (live).", labels=["source"])
        feed.add_metric([str(status["feed"].get("source", "recorded"))], 1)
        families.append(feed)
        families.extend(self._streams())
        families.extend(await self._strategies(sorted(status["strategies"]), slices))
        orders = CounterMetricFamily("bot_orders", "Orders per strategy by what became of them, since the daemon started.", labels=["strategy", "status"])
        for (sid, state), count in sorted(daemon.services.metrics.orders.items()):
            orders.add_metric([sid, state], count)
        families.append(orders)
        reconnects = CounterMetricFamily("bot_exchange_reconnects", "Times a live feed's stream went reconnecting, since the daemon started.", labels=["exchange"])
        reconnects.add_metric([self._exchange], sum(daemon.services.metrics.reconnects.values()))
        families.append(reconnects)
        self._families = families

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

    async def _strategies(self, ids: list[str], slices: ReadSlices) -> list[Metric]:
        manager = self._control.daemon.manager
        # The inboxes' figures straight from the delivery (the metrics command also sorts each strategy's samples for its percentiles).
        delivery_stats = getattr(manager.delivery, "stats", None)
        state = GaugeMetricFamily("bot_strategy_state", "1 for the state each strategy is in (one series per strategy).", labels=["strategy", "state"])
        decision = HistogramMetricFamily("bot_strategy_decision_seconds", "Processing time of each candle a strategy handled.", labels=["strategy"])
        depth = GaugeMetricFamily("bot_strategy_inbox_depth", "Candles queued for a strategy.", labels=["strategy"])
        overruns = CounterMetricFamily("bot_strategy_overruns", "Times a strategy's inbox overflowed and coalesced.", labels=["strategy"])
        errors = CounterMetricFamily("bot_strategy_errors", "Errors a strategy's code raised.", labels=["strategy"])
        equity = GaugeMetricFamily("bot_strategy_equity", "A strategy's equity, in its quote currency.", labels=["strategy", "currency"])
        realized = GaugeMetricFamily("bot_strategy_realized_pnl", "A strategy's realised profit and loss, in its quote currency.", labels=["strategy", "currency"])
        held = GaugeMetricFamily("bot_strategy_position_quantity", "Open quantity per strategy, symbol and side.", labels=["strategy", "symbol", "side"])
        buckets, count, total = decision.name + "_bucket", decision.name + "_count", decision.name + "_sum"
        for sid in ids:
            await slices.pause()
            try:
                orchestrator = manager.get(sid)
            except UnknownStrategyError:  # unloaded since the status was read
                continue
            state.add_metric([sid, orchestrator.state], 1)
            metrics = orchestrator.metrics
            # The histogram's samples made here, not by add_metric (which builds each label dict twice): most of a scrape's samples.
            counts = metrics.histogram
            below = 0
            done = 0
            samples = decision.samples
            for bit, bound in zip(_BUCKET_BITS, _BOUNDS, strict=True):
                below += sum(counts[done:bit + 1])
                done = bit + 1
                samples.append(Sample(buckets, {"strategy": sid, "le": bound}, below))
            handled = sum(counts[:HISTOGRAM_BUCKETS])
            samples.append(Sample(buckets, {"strategy": sid, "le": "+Inf"}, handled))
            samples.append(Sample(count, {"strategy": sid}, handled))
            samples.append(Sample(total, {"strategy": sid}, metrics.busy_ns / 1e9))
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
        return [state, decision, depth, overruns, errors, equity, realized, held]


class _OneFamily(Collector):
    """One family as a collector of its own: what generate_latest formats in one slice."""

    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        """The family."""
        yield self._family


async def exposition(registry: CollectorRegistry, slices: ReadSlices) -> bytes:
    """The registry's families in the text format 0.0.4, written by prometheus-client a few hundred samples per slice.

    Each family's samples are written in parts; each part after the first leaves out the two
    header lines (HELP and TYPE) generate_latest writes before any family's samples, so the text
    is what one generate_latest call over the whole registry gives.
    """
    out: list[bytes] = []
    for family in registry.collect():
        samples = family.samples
        for start in range(0, max(len(samples), 1), _SAMPLES_PER_SLICE):
            part = copy.copy(family)
            part.samples = samples[start:start + _SAMPLES_PER_SLICE]
            text = generate_latest(_OneFamily(part))
            out.append(text if start == 0 else text.split(b"\n", 2)[2])
            await slices.pause()
    return b"".join(out)


class DaemonMetrics:
    """A daemon's /metrics: a registry of its own (never prometheus-client's global one) holding its collector."""

    def __init__(self, control: Control, exchange: str) -> None:
        self.collector = BotCollector(control, exchange)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    async def scrape(self, slices: ReadSlices) -> bytes:
        """The figures read now and written out, both in slices of the loop."""
        await self.collector.read(slices)
        try:
            return await exposition(self.registry, slices)
        finally:
            # Tens of thousands of samples not kept between scrapes: the garbage collector would walk them at every full pass.
            self.collector.forget()
