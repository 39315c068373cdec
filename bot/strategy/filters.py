"""Entry filters, including the multi-timeframe trend gate; they never block exits."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from bot.config.models import FilterConfig
from bot.indicators.registry import IndicatorRegistry
from bot.ohlcv import Candle
from bot.strategy.analyzer_params import MinVolumeParams, MtfTrendParams, validate_filter_params


class EntryFilter(Protocol):
    """Decides whether an entry on the trading timeframe's latest candle is allowed."""

    timeframe: str | None

    def observe(self, candle: Candle) -> None: ...

    def reset(self) -> None: ...

    def allows(self, side: str, candle: Candle) -> bool: ...


class MtfTrendFilter:
    """Allows longs only while the higher timeframe last closed above its EMA (shorts: below).

    Blocks entries until the higher timeframe's EMA is warm. The higher timeframe's candle
    is the last *closed* one, so the gate never looks ahead.
    """

    __slots__ = ("timeframe", "_ema", "_last_close")

    def __init__(self, params: MtfTrendParams, indicators: IndicatorRegistry) -> None:
        self.timeframe: str | None = params.timeframe
        self._ema = indicators.require("ema", period=params.period)
        self._last_close: float | None = None

    def observe(self, candle: Candle) -> None:
        """Remember the higher timeframe's latest close (its registry updates the EMA)."""
        self._last_close = candle.close

    def reset(self) -> None:
        """Forget the last close (its indicators are reset by their registry)."""
        self._last_close = None

    def allows(self, side: str, candle: Candle) -> bool:
        """Compare the higher timeframe's last close with its EMA."""
        ema, close = self._ema.value, self._last_close
        if ema is None or close is None:
            return False
        return close > ema if side == "long" else close < ema


class MinVolumeFilter:
    """Allows entries only on candles with at least `min_volume` traded."""

    __slots__ = ("timeframe", "_min")

    def __init__(self, params: MinVolumeParams) -> None:
        self.timeframe: str | None = None
        self._min = params.min_volume

    def observe(self, candle: Candle) -> None:
        """Nothing to remember."""

    def reset(self) -> None:
        """Nothing to forget."""

    def allows(self, side: str, candle: Candle) -> bool:
        """Compare the candle's volume with the minimum."""
        return candle.volume >= self._min


def build_filters(configs: Sequence[FilterConfig], registry_for: Callable[[str], IndicatorRegistry]) -> tuple[EntryFilter, ...]:
    """Build a strategy's filters; `registry_for(tf)` gives the indicator registry of a timeframe."""
    filters: list[EntryFilter] = []
    for config in configs:
        params = validate_filter_params(config.type, config.params)
        if isinstance(params, MtfTrendParams):
            filters.append(MtfTrendFilter(params, registry_for(params.timeframe)))
        elif isinstance(params, MinVolumeParams):
            filters.append(MinVolumeFilter(params))
        else:  # pragma: no cover - validate_filter_params only returns the types above
            raise ValueError(f"no builder for filter {config.type!r}")
    return tuple(filters)
