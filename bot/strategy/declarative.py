"""The built-in declarative strategy: weighted analyzers, entry filters and thresholds, all from its file."""
from __future__ import annotations

from collections.abc import Sequence

from bot.ohlcv import Candle
from bot.strategy.analyzers import AnalyzerRegistry
from bot.strategy.base import Strategy, StrategyContext, StrategyParams, Stream
from bot.strategy.filters import EntryFilter, build_filters


class DeclarativeStrategy(Strategy[StrategyParams]):
    """Long-only: enters when the weighted analyzer score reaches `entry_threshold` and every
    filter allows it, exits when the score falls to `-exit_threshold`.

    Everything comes from the strategy file's `analyzers`, `filters`, `entry_threshold`,
    `exit_threshold` and `exits`: no code to write. Suits combining the built-in analyzers
    (ema_cross, rsi, bollinger, ema_trend) with a multi-timeframe or volume gate.
    """

    name = "declarative"
    version = "1.0.0"

    def __init__(self, params: StrategyParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        spec = context.spec
        main = context.indicators()
        self.analyzers = AnalyzerRegistry(spec.analyzers, main)
        symbol = context.symbol
        self.filters: tuple[EntryFilter, ...] = build_filters(spec.filters, lambda tf: context.indicators(symbol, tf))
        self._streams: tuple[Stream, ...] = ((symbol, context.timeframe),) + tuple(
            dict.fromkeys((symbol, f.timeframe) for f in self.filters if f.timeframe and f.timeframe != context.timeframe)
        )
        self._filters_by_tf: dict[str, tuple[EntryFilter, ...]] = {
            tf: tuple(f for f in self.filters if (f.timeframe or context.timeframe) == tf) for _, tf in self._streams
        }
        self.entry_threshold = spec.entry_threshold
        self.exit_threshold = spec.exit_threshold

    def subscriptions(self) -> Sequence[Stream]:
        """The trading stream, then each filter's higher timeframe."""
        return self._streams

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Score the trading stream's candle and enter or exit; other streams feed the filters."""
        ctx = self.ctx
        observing = self._filters_by_tf.get(timeframe)
        if observing:
            for entry_filter in observing:
                entry_filter.observe(candle)
        if timeframe != ctx.timeframe:
            return
        score = self.analyzers.score(candle)
        position = ctx.position_on(symbol)
        if position is None:
            if score < self.entry_threshold or not ctx.is_flat(symbol):
                return
            for entry_filter in self.filters:
                if not entry_filter.allows("long", candle):
                    return
            ctx.signal("entry", score, symbol, candle, self.analyzers.breakdown(candle))
            ctx.open("long", symbol)
            return
        exit_threshold = self.exit_threshold
        if exit_threshold is not None and score <= -exit_threshold and position.closable:
            ctx.signal("exit", score, symbol, candle, self.analyzers.breakdown(candle))
            ctx.close(position)

    def on_history(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Filters remember their timeframe's latest close."""
        for entry_filter in self._filters_by_tf.get(timeframe, ()):
            entry_filter.observe(candle)

    def reset(self) -> None:
        """Forget what the filters remembered."""
        for entry_filter in self.filters:
            entry_filter.reset()

    def reconfigured(self) -> None:
        """Take the new thresholds (reload, set)."""
        self.entry_threshold = self.ctx.spec.entry_threshold
        self.exit_threshold = self.ctx.spec.exit_threshold
