"""`/metrics`: the daemon's figures in Prometheus's text format, read at scrape time from its metrics objects and the control commands.

A registry of its own per daemon (never prometheus-client's global one). No order id, timestamp or other
unbounded value is ever a label: strategies, symbols, timeframes, states, currencies and sides are.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from bot.config.currency import quote_currency
from bot.control.commands import Control, call_command
from bot.daemon.read_slices import ReadSlices
from bot.errors import UnknownStrategyError
from bot.metrics import HISTOGRAM_BUCKETS, ORDER_STATUS
from bot.version import bot_version

# The decision histogram's buckets: powers of four of nanoseconds, from about 1 µs (2**10) to about 17 s (2**34): 13 bounds, so
# a thousand strategies' histograms stay at 16,000 series; the bot's own histogram (bit lengths) gives each bound exactly.
_BUCKET_BITS = tuple(range(10, 35, 2))
_BOUNDS = tuple(repr(2**bit / 1e9) for bit in _BUCKET_BITS)
# Samples a family is read and written in between two pauses of the loop, about (a part of strategies holds about
# this many; exposition writes any part in pieces of at most this many). Timed on a 2-core host: generate_latest
# takes ~9 µs a sample and reading a strategy's histogram ~25 µs, so 64 samples are about 0.6 ms (reading 200
# histograms took 5.7 ms, writing 400 samples 3.8 ms: timed apart, each was one step of the loop before).
_SAMPLES_PER_PART = 64
# Samples each strategy has in a family (the positions' family: one per symbol and side held, seldom more than two).
_STRATEGY_SAMPLES = {"bot_strategy_decision_seconds": len(_BOUNDS) + 3, "bot_strategy_position_quantity": 2}

T = TypeVar("T")


def _parts(items: list[T], size: int) -> Iterator[list[T]]:
    """`items` in consecutive parts of `size` (one empty part when there are none: a family is written even empty)."""
    for start in range(0, max(len(items), 1), size):
        yield items[start:start + size]


class BotCollector(Collector):
    """Reads one daemon's figures as a scrape writes them out: each family in parts of a few dozen samples.

    `collect` yields consecutive parts of one family under the same name: write them out with
    `exposition`, which writes each family's header once (generate_latest over the registry would
    repeat it per part, which Prometheus refuses). A part is read from the daemon when it is its turn, so a scrape never holds
    the tens of thousands of samples of a thousand strategies at once (kept across the loop's
    slices, they would be promoted to the collector's oldest generation and make the garbage
    collector walk the whole heap, inside a candle round, about once a scrape). The daemon-wide
    figures (health, kill switch, feed, strategies listed) come from the `status` the scrape read
    first (`scrape`); before any scrape nothing is collected.
    """

    def __init__(self, control: Control, exchange: str) -> None:
        self._control = control
        # The exchange label of feed reconnects: the live feed's exchange, or "paper" for recorded candles.
        self._exchange = exchange
        # The status the newest scrape read (None before the first).
        self._status: dict[str, Any] | None = None

    async def read_status(self, control: Control) -> None:
        """Read the daemon's status for the scrape about to collect, with the scrape's control (its slices: bot.daemon.read_slices)."""
        self._status = await call_command(control, "status", {})

    def collect(self) -> Iterator[Metric]:
        """Every family, read now, strategies' families in parts."""
        status = self._status
        if status is None:
            return
        daemon = self._control.daemon
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
        ids = sorted(status["strategies"])
        for family in _STRATEGY_FAMILIES:
            for part in _parts(ids, max(1, _SAMPLES_PER_PART // _STRATEGY_SAMPLES.get(family, 1))):
                yield self._part(family, part)
        yield from self._orders()
        reconnects = CounterMetricFamily("bot_exchange_reconnects", "Times a live feed's stream went reconnecting, since the daemon started.", labels=["exchange"])
        reconnects.add_metric([self._exchange], sum(daemon.services.metrics.reconnects.values()))
        yield reconnects

    def _orders(self) -> Iterator[Metric]:
        """Orders per strategy and status (unloaded strategies' too), in parts: the order of one sort by (strategy, status)."""
        statuses: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for (sid, state), count in self._control.daemon.services.metrics.orders.items():
            statuses[sid].append((state, count))
        for part in _parts(sorted(statuses), max(1, _SAMPLES_PER_PART // len(ORDER_STATUS))):
            orders = CounterMetricFamily("bot_orders", "Orders per strategy by what became of them, since the daemon started.", labels=["strategy", "status"])
            for sid in part:
                for state, count in sorted(statuses[sid]):
                    orders.add_metric([sid, state], count)
            yield orders

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

    def _part(self, family: str, ids: list[str]) -> Metric:
        """One family's samples for the strategies `ids` (one unloaded since the status was read is left out)."""
        manager = self._control.daemon.manager
        # A gauge, counter or histogram family: add_metric as its kind takes it.
        metric: Any = _new_family(family)
        # The inboxes' figures straight from the delivery (the metrics command also sorts each strategy's samples for its percentiles).
        delivery_stats = getattr(manager.delivery, "stats", None)
        for sid in ids:
            try:
                orchestrator = manager.get(sid)
            except UnknownStrategyError:
                continue
            if family == "bot_strategy_state":
                metric.add_metric([sid, orchestrator.state], 1)
            elif family == "bot_strategy_decision_seconds":
                _add_histogram(metric, sid, orchestrator.metrics.histogram, orchestrator.metrics.busy_ns)
            elif family in ("bot_strategy_inbox_depth", "bot_strategy_overruns"):
                figure = delivery_stats(orchestrator) if delivery_stats is not None else {}
                metric.add_metric([sid], figure.get("inbox_depth" if family == "bot_strategy_inbox_depth" else "overruns", 0))
            elif family == "bot_strategy_errors":
                metric.add_metric([sid], orchestrator.metrics.errors)
            elif family == "bot_strategy_equity":
                metric.add_metric([sid, quote_currency(orchestrator.symbol)], orchestrator.portfolio.equity)
            elif family == "bot_strategy_realized_pnl":
                metric.add_metric([sid, quote_currency(orchestrator.symbol)], orchestrator.portfolio.realised)
            else:
                quantities: dict[tuple[str, str], float] = defaultdict(float)
                for position in orchestrator.positions.positions.values():
                    quantities[(position.symbol, position.side)] += position.quantity
                for (symbol, side), quantity in sorted(quantities.items()):
                    metric.add_metric([sid, symbol, side], quantity)
        return cast(Metric, metric)


# Each strategy's families, in the order they are written: (kind, help, labels).
_STRATEGY_FAMILY_SPECS: dict[str, tuple[Callable[..., Metric], str, list[str]]] = {
    "bot_strategy_state": (GaugeMetricFamily, "1 for the state each strategy is in (one series per strategy).", ["strategy", "state"]),
    "bot_strategy_decision_seconds": (HistogramMetricFamily, "Processing time of each candle a strategy handled.", ["strategy"]),
    "bot_strategy_inbox_depth": (GaugeMetricFamily, "Candles queued for a strategy.", ["strategy"]),
    "bot_strategy_overruns": (CounterMetricFamily, "Times a strategy's inbox overflowed and coalesced.", ["strategy"]),
    "bot_strategy_errors": (CounterMetricFamily, "Errors a strategy's code raised.", ["strategy"]),
    "bot_strategy_equity": (GaugeMetricFamily, "A strategy's equity, in its quote currency.", ["strategy", "currency"]),
    "bot_strategy_realized_pnl": (GaugeMetricFamily, "A strategy's realised profit and loss, in its quote currency.", ["strategy", "currency"]),
    "bot_strategy_position_quantity": (GaugeMetricFamily, "Open quantity per strategy, symbol and side.", ["strategy", "symbol", "side"]),
}
_STRATEGY_FAMILIES = tuple(_STRATEGY_FAMILY_SPECS)


def _new_family(name: str) -> Metric:
    kind, documentation, labels = _STRATEGY_FAMILY_SPECS[name]
    return kind(name, documentation, labels=labels)


def _add_histogram(family: Metric, sid: str, counts: list[int], busy_ns: int) -> None:
    """The strategy's decision histogram at the bounds, from its counts by bit length (samples made here: add_metric builds each label dict twice)."""
    buckets, count, total = family.name + "_bucket", family.name + "_count", family.name + "_sum"
    samples = family.samples
    below = 0
    done = 0
    for bit, bound in zip(_BUCKET_BITS, _BOUNDS, strict=True):
        below += sum(counts[done:bit + 1])
        done = bit + 1
        samples.append(Sample(buckets, {"strategy": sid, "le": bound}, below))
    handled = sum(counts[:HISTOGRAM_BUCKETS])
    samples.append(Sample(buckets, {"strategy": sid, "le": "+Inf"}, handled))
    samples.append(Sample(count, {"strategy": sid}, handled))
    samples.append(Sample(total, {"strategy": sid}, busy_ns / 1e9))


class _OneFamily(Collector):
    """One family as a collector of its own: what generate_latest formats as one part."""

    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        """The family."""
        yield self._family


async def exposition(families: Iterable[Metric], slices: ReadSlices) -> bytes:
    """`families` in the text format 0.0.4, written by prometheus-client a few dozen samples at a time, pausing between them (`slices`).

    Consecutive families of one name are parts of one family, and a family's samples are written in
    parts too: each part after a family's first leaves out the two header lines (HELP and TYPE)
    generate_latest writes before any family's samples, so the text is what one generate_latest call
    over the whole family gives, for families without OpenMetrics' `_created`, `_gsum` or `_gcount`
    samples (generate_latest writes those after each part: BotCollector makes none). The next family
    is taken (and so read, from BotCollector) after a pause.
    """
    out: list[bytes] = []
    previous: str | None = None
    for family in families:
        samples = family.samples
        for piece in _parts(samples, _SAMPLES_PER_PART):
            part = copy.copy(family)
            part.samples = piece
            text = generate_latest(_OneFamily(part))
            out.append(text.split(b"\n", 2)[2] if family.name == previous else text)
            previous = family.name
            await slices.pause()
    return b"".join(out)


class DaemonMetrics:
    """A daemon's /metrics: a registry of its own (never prometheus-client's global one) holding its collector."""

    def __init__(self, control: Control, exchange: str) -> None:
        self.collector = BotCollector(control, exchange)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    async def scrape(self, control: Control) -> bytes:
        """The daemon's status read, then every family read and written out a part at a time: all in the slices of `control`'s request."""
        await self.collector.read_status(control)
        return await exposition(self.registry.collect(), control.slices())
