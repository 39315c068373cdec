"""Market conditions a strategy can require before entering, from its own parameters.

The orchestrator knows none of them: a strategy puts a `MarketConditions` field in its
Params and asks its `MarketFilter` before each entry.
"""
from __future__ import annotations

from pydantic import Field, model_validator

from bot.config.numbers import Volume
from bot.indicators.registry import IndicatorRegistry
from bot.ohlcv import Candle
from bot.strategy.base import StrategyParams

_HOUR_MS = 3_600_000


class MarketConditions(StrategyParams):
    """Entry conditions on volume, volatility, trend regime and time of day; each is off when unset."""

    min_volume: Volume | None = Field(default=None, description="the candle's volume, in the data's unit")
    volume_period: int = Field(default=20, ge=2, description="candles in the volume average")
    min_volume_ratio: float | None = Field(default=None, gt=0, description="the candle's volume over its average")
    atr_period: int = Field(default=14, ge=1)
    min_atr_pct: float | None = Field(default=None, ge=0, description="ATR as a percent of the close, at least")
    max_atr_pct: float | None = Field(default=None, gt=0, description="ATR as a percent of the close, at most")
    adx_period: int = Field(default=14, ge=2)
    min_adx: float | None = Field(default=None, ge=0, le=100, description="trending regime: ADX at least this")
    max_adx: float | None = Field(default=None, ge=0, le=100, description="ranging regime: ADX at most this")
    trend_ema: int | None = Field(default=None, ge=2, description="longs only above this EMA of the close, shorts only below")
    hours_utc: tuple[int, int] | None = Field(
        default=None, description="[start, end) UTC hours of the candle's close when entries are allowed; wraps midnight"
    )

    @model_validator(mode="after")
    def _ranges(self) -> MarketConditions:
        if self.min_atr_pct is not None and self.max_atr_pct is not None and self.min_atr_pct > self.max_atr_pct:
            raise ValueError(f"min_atr_pct ({self.min_atr_pct}) is above max_atr_pct ({self.max_atr_pct})")
        if self.min_adx is not None and self.max_adx is not None and self.min_adx > self.max_adx:
            raise ValueError(f"min_adx ({self.min_adx}) is above max_adx ({self.max_adx})")
        if self.hours_utc is not None:
            start, end = self.hours_utc
            if not (0 <= start <= 23 and 0 <= end <= 24) or start == end:
                raise ValueError(f"hours_utc must be two different hours, start 0-23 and end 0-24, got {list(self.hours_utc)}")
        return self


class MarketFilter:
    """Checks one strategy's MarketConditions on the candle just closed, from its own indicators."""

    __slots__ = ("_c", "_volume", "_volume_ratio", "_atr", "_adx", "_ema", "_tf_ms")

    def __init__(self, conditions: MarketConditions, indicators: IndicatorRegistry, timeframe_ms: int) -> None:
        self._c = conditions
        self._tf_ms = timeframe_ms
        need_volume = conditions.min_volume_ratio is not None
        need_atr = conditions.min_atr_pct is not None or conditions.max_atr_pct is not None
        need_adx = conditions.min_adx is not None or conditions.max_adx is not None
        self._volume = indicators.require("sma", period=conditions.volume_period, source="volume") if need_volume else None
        self._volume_ratio = conditions.min_volume_ratio or 0.0  # read only when _volume is set
        self._atr = indicators.require("atr", period=conditions.atr_period) if need_atr else None
        self._adx = indicators.require("adx", period=conditions.adx_period) if need_adx else None
        self._ema = indicators.require("ema", period=conditions.trend_ema) if conditions.trend_ema is not None else None

    def blocked_by(self, side: str, candle: Candle) -> str | None:
        """The first condition that blocks an entry on this candle, or None when all hold.

        A condition whose indicator is not warm yet blocks: no entry on a guess.
        """
        c = self._c
        if c.min_volume is not None and candle.volume < c.min_volume:
            return "min_volume"
        if self._volume is not None:
            average = self._volume.value
            if average is None or average <= 0 or candle.volume / average < self._volume_ratio:
                return "min_volume_ratio"
        if self._atr is not None:
            atr = self._atr.value
            if atr is None or candle.close <= 0:
                return "atr_pct"
            atr_pct = 100.0 * atr / candle.close
            if (c.min_atr_pct is not None and atr_pct < c.min_atr_pct) or (c.max_atr_pct is not None and atr_pct > c.max_atr_pct):
                return "atr_pct"
        if self._adx is not None:
            adx = self._adx.value
            if adx is None or (c.min_adx is not None and adx < c.min_adx) or (c.max_adx is not None and adx > c.max_adx):
                return "adx"
        if self._ema is not None:
            ema = self._ema.value
            if ema is None or not (candle.close > ema if side == "long" else candle.close < ema):
                return "trend_ema"
        if c.hours_utc is not None:
            hour = ((candle.ts + self._tf_ms) // _HOUR_MS) % 24
            start, end = c.hours_utc
            inside = start <= hour < end if start < end else hour >= start or hour < end
            if not inside:
                return "hours_utc"
        return None

    def allows(self, side: str, candle: Candle) -> bool:
        """True when every condition holds for an entry on `side`."""
        return self.blocked_by(side, candle) is None
