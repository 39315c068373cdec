"""Analyzers score the latest candle in [-1, 1] from shared indicators; the registry weights them."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from bot.config.models import AnalyzerConfig
from bot.indicators.registry import IndicatorRegistry
from bot.ohlcv import Candle
from bot.strategy.analyzer_params import BollingerParams, EmaCrossParams, EmaTrendParams, RsiParams, validate_analyzer_params


class Analyzer(Protocol):
    """Scores the candle just closed in [-1, 1] (+1 strongly long, -1 strongly short, 0 neutral)."""

    def score(self, candle: Candle) -> float: ...


class EmaCrossAnalyzer:
    """+1 on the candle where fast - slow goes from < 0 to > 0, -1 on the reverse, else 0."""

    __slots__ = ("_fast", "_slow")

    def __init__(self, params: EmaCrossParams, indicators: IndicatorRegistry) -> None:
        self._fast = indicators.require("ema", period=params.fast)
        self._slow = indicators.require("ema", period=params.slow)

    def score(self, candle: Candle) -> float:
        """Detect a cross between the previous candle and this one."""
        fast, slow = self._fast, self._slow
        fast_prev, slow_prev = fast.prev, slow.prev
        fast_now, slow_now = fast.value, slow.value
        if fast_prev is None or slow_prev is None or fast_now is None or slow_now is None:
            return 0.0
        before = fast_prev - slow_prev
        now = fast_now - slow_now
        if before < 0.0 < now:
            return 1.0
        if before > 0.0 > now:
            return -1.0
        return 0.0


class RsiAnalyzer:
    """+1 at or below oversold, -1 at or above overbought, linear through 0 at RSI 50."""

    __slots__ = ("_rsi", "_low_span", "_high_span")

    def __init__(self, params: RsiParams, indicators: IndicatorRegistry) -> None:
        self._rsi = indicators.require("rsi", period=params.period)
        self._low_span = 50.0 - params.oversold
        self._high_span = params.overbought - 50.0

    def score(self, candle: Candle) -> float:
        """Map the RSI onto [-1, 1]."""
        rsi = self._rsi.value
        if rsi is None:
            return 0.0
        score = (50.0 - rsi) / (self._low_span if rsi < 50.0 else self._high_span)
        return 1.0 if score > 1.0 else -1.0 if score < -1.0 else score


class BollingerAnalyzer:
    """+1 at or below the lower band, -1 at or above the upper band, 0 at the middle."""

    __slots__ = ("_bands",)

    def __init__(self, params: BollingerParams, indicators: IndicatorRegistry) -> None:
        self._bands = indicators.require("bollinger", period=params.period, k=params.k)

    def score(self, candle: Candle) -> float:
        """Where the close sits between the bands."""
        bands = self._bands
        middle = bands.value
        if middle is None:
            return 0.0
        close = candle.close
        upper, lower = bands.upper, bands.lower
        if upper is None or lower is None:
            return 0.0
        half_width = (upper - middle) if close > middle else (middle - lower)
        if half_width <= 0.0:
            return 0.0
        score = (middle - close) / half_width
        return 1.0 if score > 1.0 else -1.0 if score < -1.0 else score


class EmaTrendAnalyzer:
    """+1 while the close is above the EMA, -1 while below, 0 before the EMA is ready."""

    __slots__ = ("_ema",)

    def __init__(self, params: EmaTrendParams, indicators: IndicatorRegistry) -> None:
        self._ema = indicators.require("ema", period=params.period)

    def score(self, candle: Candle) -> float:
        """Compare the close to the EMA."""
        ema = self._ema.value
        if ema is None:
            return 0.0
        close = candle.close
        return 1.0 if close > ema else -1.0 if close < ema else 0.0


_BUILDERS: Final[dict[str, Callable[[Any, IndicatorRegistry], Analyzer]]] = {
    "ema_cross": EmaCrossAnalyzer,
    "rsi": RsiAnalyzer,
    "bollinger": BollingerAnalyzer,
    "ema_trend": EmaTrendAnalyzer,
}


class AnalyzerRegistry:
    """One strategy's analyzers with their weights; the combined score is their weighted mean."""

    __slots__ = ("_scorers", "_weights", "_total", "names", "score")

    def __init__(self, configs: Sequence[AnalyzerConfig], indicators: IndicatorRegistry) -> None:
        analyzers = []
        for config in configs:
            params = validate_analyzer_params(config.type, config.params)
            analyzers.append(_BUILDERS[config.type](params, indicators))
        self._scorers = tuple(a.score for a in analyzers)
        self._weights = tuple(c.weight for c in configs)
        self._total = sum(self._weights)
        self.names = tuple(c.type for c in configs)
        # With one analyzer the weighted mean is its own score: call it directly.
        self.score: Callable[[Candle], float] = self._scorers[0] if len(self._scorers) == 1 else self._weighted

    def __len__(self) -> int:
        return len(self._scorers)

    def _weighted(self, candle: Candle) -> float:
        """Weighted mean of every analyzer's score, in [-1, 1]."""
        total = 0.0
        for scorer, weight in zip(self._scorers, self._weights):
            total += weight * scorer(candle)
        return total / self._total

    def breakdown(self, candle: Candle) -> dict[str, float]:
        """Each analyzer's own score (for signal events), keyed by position and type."""
        return {f"{i}:{name}": scorer(candle) for i, (name, scorer) in enumerate(zip(self.names, self._scorers))}
