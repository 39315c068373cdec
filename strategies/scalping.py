"""Scalping: 1m pullbacks to a short EMA in the direction of the 5m trend, held for minutes at most."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.base import Strategy, StrategyContext, StrategyParams, Stream
from bot.strategy.conditions import MarketConditions, MarketFilter
from bot.trading.actions import Side


class ScalpingParams(StrategyParams):
    """Parameters of scalping."""

    ema_period: int = Field(default=9, ge=2, description="period of the short EMA on the trading timeframe that price pulls back to")
    trend_timeframe: str = Field(default="5m", description="the context timeframe whose trend an entry must follow")
    trend_ema: int = Field(default=20, ge=2, description="period of the EMA on the context timeframe: up while its close is above it")
    max_hold_candles: int = Field(
        default=15, ge=1, description="trading-timeframe candles a position may stay open, counted from its fill; then it is closed"
    )
    allow_short: bool = Field(default=True, description="also sell rallies to the EMA while the context trend is down")
    market: MarketConditions = MarketConditions(min_atr_pct=0.05, max_atr_pct=0.25)

    @field_validator("trend_timeframe")
    @classmethod
    def _timeframe_known(cls, value: str) -> str:
        try:
            timeframe_ms(value)
        except ValueError:
            raise ValueError(f"unknown timeframe {value!r} (use 1m, 3m, 5m, 15m, 30m, 1h, ...)") from None
        return value


class Scalping(Strategy[ScalpingParams]):
    """Scalps pullbacks in the direction of a higher timeframe's trend (1m and 5m unless
    configured): buys when the trading candle's close drops from above its short EMA to at or
    below it while the last closed `trend_timeframe` candle is above its own EMA (sells the
    mirror image when `allow_short`), if the ATR as a percent of price is inside the `market`
    band; closes any position still open after `max_hold_candles` candles.

    Exits come from the strategy file: a stop-loss and a take-profit ladder; the time limit
    closes what the ladder has not. Every round trip pays fees (taker in, maker at a
    take-profit, taker at a stop or the time limit), so the ladder's steps must be many times
    that cost: with 5 bps taker and 2 bps maker, steps of 0.15% and 0.3% on 1m candles trade
    so often that fees eat most of the account. The catalog's file therefore trades 5m
    pullbacks in the direction of the 1h trend with steps of 0.75% and 1.5%. Suits liquid
    markets with steady intraday trends and moderate volatility; loses in choppy markets where
    the context trend flips often.

    The time limit: the position filled at the open of candle E; on the close of candle
    E + max_hold_candles - 1 (the position has then been open for `max_hold_candles` whole
    candles) the strategy queues a market close, which fills at the next open, so no position
    is open longer than `max_hold_candles` candles.
    """

    name = "scalping"
    version = "1.0.0"

    def __init__(self, params: ScalpingParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        trading_ms = timeframe_ms(context.timeframe)
        trend_ms = timeframe_ms(params.trend_timeframe)
        if trend_ms < trading_ms or trend_ms % trading_ms:
            raise ValueError(
                f"params.trend_timeframe {params.trend_timeframe} must be a multiple of the trading timeframe {context.timeframe}"
            )
        self._tf_ms = trading_ms
        indicators = context.indicators()
        self.ema = indicators.require("ema", period=params.ema_period)
        self.atr = indicators.require("atr", period=params.market.atr_period)
        self.trend_ema = context.indicators(context.symbol, params.trend_timeframe).require("ema", period=params.trend_ema)
        self.market = MarketFilter(params.market, indicators, trading_ms)
        # +1 / -1 while the last closed context candle is above / below its EMA, 0 before it is warm.
        self._trend = 0
        self._trend_close: float | None = None
        self._prev_close: float | None = None

    def subscriptions(self) -> Sequence[Stream]:
        """The trading stream, then the context timeframe of the same symbol."""
        return ((self.ctx.symbol, self.ctx.timeframe), (self.ctx.symbol, self.params.trend_timeframe))

    def _take_trend(self, candle: Candle) -> None:
        ema = self.trend_ema.value
        self._trend_close = candle.close
        self._trend = 0 if ema is None else 1 if candle.close > ema else -1 if candle.close < ema else 0

    def pullback(self, candle: Candle) -> int:
        """+1 when the close fell from above the EMA to at or below it on this candle, -1 for the rise, else 0."""
        ema = self.ema
        if ema.prev is None or ema.value is None or self._prev_close is None:
            return 0
        if self._prev_close > ema.prev and candle.close <= ema.value:
            return 1
        if self._prev_close < ema.prev and candle.close >= ema.value:
            return -1
        return 0

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Context candles update the trend; trading candles enforce the time limit, then look for an entry."""
        if symbol != self.ctx.symbol:
            return
        if timeframe == self.params.trend_timeframe:
            self._take_trend(candle)
        if timeframe != self.ctx.timeframe:
            return
        try:
            self._decide(symbol, candle)
        finally:
            self._prev_close = candle.close

    def _decide(self, symbol: str, candle: Candle) -> None:
        ctx = self.ctx
        limit = self.params.max_hold_candles
        for position in ctx.positions():
            if position.symbol != symbol or not position.closable:
                continue
            # Candles the position has been open for, the fill candle included.
            held = (candle.ts - position.entry_ts) // self._tf_ms + 1
            if held >= limit:
                ctx.signal("exit", 0.0, symbol, candle, {"held_candles": float(held), "max_hold_candles": float(limit)})
                ctx.close(position, reason="time_limit")
        direction = self.pullback(candle)
        if direction == 0 or direction != self._trend or (direction < 0 and not self.params.allow_short):
            return
        if not ctx.is_flat(symbol):
            return
        side: Side = "long" if direction > 0 else "short"
        if self.market.blocked_by(side, candle) is not None:
            return
        ctx.signal("entry", float(direction), symbol, candle, self._details(candle))
        ctx.open(side)

    def _details(self, candle: Candle) -> dict[str, Any]:
        atr = self.atr.value
        return {
            "ema": self.ema.value,
            "trend_close": self._trend_close,
            "trend_ema": self.trend_ema.value,
            "atr_pct": None if atr is None else 100.0 * atr / candle.close,
        }

    def on_history(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Keep the context trend and the previous close current."""
        if symbol != self.ctx.symbol:
            return
        if timeframe == self.params.trend_timeframe:
            self._take_trend(candle)
        if timeframe == self.ctx.timeframe:
            self._prev_close = candle.close

    def reset(self) -> None:
        """Forget the trend and the previous close."""
        self._trend = 0
        self._trend_close = None
        self._prev_close = None

    def snapshot(self) -> dict[str, Any]:
        """The context trend and the pullback EMA."""
        return {"trend": self._trend, "trend_close": self._trend_close, "trend_ema": self.trend_ema.value, "ema": self.ema.value}
