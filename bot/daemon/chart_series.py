"""A strategy's candles with its indicators computed again over them, for its chart: kept per stream, extended as candles arrive."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from bot.candles.hub import CandleHub
from bot.indicators.registry import IndicatorRegistry
from bot.ohlcv import Candle

# Candles a chart holds at most (and the most a request gets): the first request computes the
# indicators over this many at most, on the event loop, once; later ones only over new candles.
MAX_CANDLES: Final[int] = 5_000
# Indicators in price units, drawn over the candles; the others get a pane of their own.
OVERLAYS: Final[frozenset[str]] = frozenset({"sma", "ema", "bollinger", "donchian"})


@dataclass
class _Chart:
    """One stream's candles and, per candle, every indicator's outputs after it."""

    keys: list[str]
    registry: IndicatorRegistry
    rows: deque[tuple[Candle, tuple[float | None, ...]]] = field(default_factory=lambda: deque(maxlen=MAX_CANDLES))


class ChartSeries:
    """Candles of the hub's history with a strategy's indicators over them, by the strategy's own indicator code.

    The indicators are made again (unwarmed) from the strategy's registry and fed the history,
    so early values differ from the strategy's while a recursive one (EMA, RSI, ADX) warms up;
    over a history several periods long the newest values are the strategy's. A stream's chart
    holds the hub's window of it: kept, and only fed the candles that arrived since the last
    request; it starts over when the strategy's indicators changed or the history no longer holds
    its last candle.
    """

    def __init__(self, hub: CandleHub) -> None:
        self._hub = hub
        self._charts: dict[tuple[str, str, str], _Chart] = {}

    def read(self, strategy_id: str, registry: IndicatorRegistry, symbol: str, timeframe: str, limit: int) -> dict[str, Any]:
        """The newest `limit` candles (oldest first) as [open ts, open, high, low, close, volume], and each indicator's outputs aligned with them."""
        chart = self._updated(strategy_id, registry, symbol, timeframe)
        rows = list(chart.rows)[-limit:] if limit < len(chart.rows) else list(chart.rows)
        indicators = []
        column = 0
        for key, name, _, outputs in chart.registry.items():
            series = {output: [row[1][column + i] for row in rows] for i, output in enumerate(outputs)}
            column += len(outputs)
            indicators.append({"key": key, "name": name, "overlay": name in OVERLAYS, "series": series})
        return {"candles": [list(row[0]) for row in rows], "indicators": indicators}

    def keep(self, loaded: set[str], strategy_id: str, watched: set[tuple[str, str]]) -> None:
        """Drop the charts of strategies not `loaded`, and those of `strategy_id`'s streams it no longer `watched`."""
        for key in [key for key in self._charts if key[0] not in loaded or (key[0] == strategy_id and key[1:] not in watched)]:
            del self._charts[key]

    def _updated(self, strategy_id: str, registry: IndicatorRegistry, symbol: str, timeframe: str) -> _Chart:
        history = self._hub.history(symbol, timeframe, MAX_CANDLES)
        key = (strategy_id, symbol, timeframe)
        chart = self._charts.get(key)
        keys = registry.keys()
        new: list[Candle] = history
        if chart is not None and chart.keys == keys and chart.rows:
            start = _after(history, chart.rows[-1][0])
            if start is None:
                chart = None  # the history moved past it (or holds other candles now): compute again
            else:
                new = history[start:]
        else:
            chart = None
        if chart is None:
            chart = self._charts[key] = _Chart(keys, registry.fresh())
        update = chart.registry.update
        getters = [(indicator, outputs) for _, _, indicator, outputs in chart.registry.items()]
        rows = chart.rows
        for candle in new:
            update(candle)
            rows.append((candle, tuple(getattr(indicator, output) for indicator, outputs in getters for output in outputs)))
        # The hub's window, no more: what it has dropped, the chart drops too.
        while len(rows) > len(history):
            rows.popleft()
        return chart


def _after(history: list[Candle], last: Candle) -> int | None:
    """The index in `history` just after `last`; None when it does not hold that very candle (it is empty when nothing is newer)."""
    for index in range(len(history) - 1, -1, -1):
        candle = history[index]
        if candle.ts == last.ts:
            return index + 1 if candle == last else None
        if candle.ts < last.ts:
            return None
    return None
