"""Multi-timeframe trend: EMA crossover entries gated by the higher-timeframe trend, ATR trailing stop."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from bot.indicators.averages import crossing
from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.base import Strategy, StrategyContext, StrategyParams, Stream
from bot.strategy.conditions import MarketConditions, MarketFilter

if TYPE_CHECKING:
    from bot.trading.positions import Position


class TrendMtfParams(StrategyParams):
    """Parameters of trend_mtf."""

    fast: int = Field(default=9, ge=1, description="period of the fast EMA on the trading timeframe")
    slow: int = Field(default=21, ge=2, description="period of the slow EMA on the trading timeframe")
    trend_timeframe: str = Field(default="1h", description="the higher timeframe whose trend gates entries")
    trend_ema: int = Field(default=50, ge=2, description="longs only while the last closed trend_timeframe candle closed above this EMA of it")
    atr_period: int = Field(default=14, ge=1, description="period of the ATR of the trailing stop, on the trading timeframe")
    atr_mult: float = Field(default=3.0, gt=0, le=50, description="the stop trails this many ATRs below the close")
    market: MarketConditions = Field(default=MarketConditions(), description="market conditions required before an entry (all off by default)")

    @field_validator("trend_timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        timeframe_ms(value)
        return value

    @model_validator(mode="after")
    def _fast_below_slow(self) -> TrendMtfParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class TrendMtf(Strategy[TrendMtfParams]):
    """Long-only trend following on two timeframes: buys when EMA(`fast`) crosses above
    EMA(`slow`) on the trading timeframe (e.g. 15m) while the last closed `trend_timeframe`
    candle (e.g. 1h) closed above its EMA(`trend_ema`); exits only through an ATR trailing stop.

    While a position is open, each candle's close moves its stop to close - `atr_mult` x
    ATR(`atr_period`) whenever that is higher than the current stop: the stop only ever
    rises, and the position manager enforces it intrabar. The strategy file's
    `exits.stop_loss_pct` is the initial stop until the ATR stop overtakes it. Suits trending
    markets; the higher-timeframe gate keeps it out of counter-trend crosses, and the wide
    ATR stop lets winners run but gives back a few ATRs at the turn.
    """

    name = "trend_mtf"
    version = "1.0.0"

    def __init__(self, params: TrendMtfParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        if timeframe_ms(params.trend_timeframe) <= timeframe_ms(context.timeframe):
            raise ValueError(
                f"trend_mtf: params.trend_timeframe ({params.trend_timeframe}) must be longer than the trading timeframe ({context.timeframe})"
            )
        indicators = context.indicators()
        self.fast = indicators.require("ema", period=params.fast)
        self.slow = indicators.require("ema", period=params.slow)
        self.atr = indicators.require("atr", period=params.atr_period)
        self.trend = context.indicators(context.symbol, params.trend_timeframe).require("ema", period=params.trend_ema)
        self.market = MarketFilter(params.market, indicators, timeframe_ms(context.timeframe))
        # (close, EMA) of the last closed higher-timeframe candle; None until its EMA is warm.
        self._trend_close: float | None = None
        self._trend_level: float | None = None

    def subscriptions(self) -> Sequence[Stream]:
        """The trading stream, then the same symbol on the trend timeframe."""
        return ((self.ctx.symbol, self.ctx.timeframe), (self.ctx.symbol, self.params.trend_timeframe))

    def reset(self) -> None:
        """Forget the higher-timeframe trend."""
        self._trend_close = None
        self._trend_level = None

    def trend_up(self) -> bool:
        """True while the last closed higher-timeframe candle closed above its EMA."""
        return self._trend_close is not None and self._trend_level is not None and self._trend_close > self._trend_level

    def _observe_trend(self, symbol: str, timeframe: str, candle: Candle) -> bool:
        """Take a higher-timeframe candle into the gate; True when it was one."""
        if symbol != self.ctx.symbol or timeframe != self.params.trend_timeframe:
            return False
        self._trend_close = candle.close
        self._trend_level = self.trend.value
        return True

    def on_history(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Keep the higher-timeframe gate current during warm-up."""
        self._observe_trend(symbol, timeframe, candle)

    def cross(self) -> int:
        """+1 when the fast EMA went from below to above the slow one on this candle, -1 for the reverse, else 0."""
        return crossing(self.fast, self.slow)

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Ratchet the stop of an open position; otherwise enter on an upward cross inside an uptrend."""
        if self._observe_trend(symbol, timeframe, candle):
            return
        ctx = self.ctx
        if symbol != ctx.symbol or timeframe != ctx.timeframe:
            return
        position = ctx.position()
        if position is not None:
            self._ratchet(position, candle)
            return
        if self.cross() <= 0 or not ctx.is_flat() or not self.trend_up():
            return
        if self.market.blocked_by("long", candle) is not None:
            return
        details: dict[str, Any] = {
            "ema_fast": self.fast.value,
            "ema_slow": self.slow.value,
            "trend_close": self._trend_close,
            "trend_ema": self._trend_level,
        }
        ctx.signal("entry", 1.0, symbol, candle, details)
        ctx.open("long", reason="trend_cross")

    def _ratchet(self, position: Position, candle: Candle) -> None:
        atr = self.atr.value
        if atr is None or not position.closable:
            return
        stop = candle.close - self.params.atr_mult * atr
        current = position.stop_loss
        if stop > 0.0 and (current is None or stop > current):
            self.ctx.update_stop(position, stop, reason="atr_trail")

    def snapshot(self) -> dict[str, Any]:
        """The higher-timeframe gate."""
        return {"trend_close": self._trend_close, "trend_ema": self._trend_level, "trend_up": self.trend_up()}
