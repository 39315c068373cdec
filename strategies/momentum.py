"""Momentum: Donchian channel breakout confirmed by rate of change and volume."""
from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.base import Strategy, StrategyContext, StrategyParams
from bot.strategy.conditions import MarketConditions, MarketFilter


class MomentumParams(StrategyParams):
    """Parameters of momentum."""

    entry_period: int = Field(default=20, ge=2, description="candles in the breakout channel (the ones before the deciding candle)")
    exit_period: int = Field(default=10, ge=1, description="candles in the exit channel; shorter than entry_period")
    roc_period: int = Field(default=10, ge=1, description="candles back for the rate of change of the close")
    min_roc_pct: float = Field(default=0.5, ge=-100, description="ROC(roc_period) of the close, in percent, at least this to enter")
    volume_period: int = Field(default=20, ge=2, description="candles in the volume average (the deciding candle included)")
    volume_ratio: float | None = Field(
        default=1.5, gt=0, description="the candle's volume over its average, at least this to enter; null turns the check off"
    )
    market: MarketConditions = Field(default=MarketConditions(), description="market conditions required before an entry (all off by default)")

    @model_validator(mode="after")
    def _exit_channel_shorter(self) -> MomentumParams:
        if self.exit_period >= self.entry_period:
            raise ValueError(f"exit_period ({self.exit_period}) must be smaller than entry_period ({self.entry_period})")
        return self


class Momentum(Strategy[MomentumParams]):
    """Long-only Donchian breakout: buys when the close breaks above the highest high of the
    previous `entry_period` candles while ROC(`roc_period`) is at least `min_roc_pct` and the
    candle's volume is at least `volume_ratio` times its average; sells everything when the
    close falls below the lowest low of the previous `exit_period` candles.

    Suits markets that trend in bursts (news, session opens) on 15m-4h candles: it buys
    strength and rides it with a channel exit, so it gives back part of each move and loses
    small and often in a range, where false breakouts are common. The volume and ROC
    confirmations filter out part of those; an ADX or ATR% market condition filters more.
    The strategy file's `exits` (a stop-loss) protect against a failed breakout before the
    exit channel catches up.
    """

    name = "momentum"
    version = "1.0.0"

    def __init__(self, params: MomentumParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        indicators = context.indicators()
        self.entry_channel = indicators.require("donchian", period=params.entry_period)
        self.exit_channel = indicators.require("donchian", period=params.exit_period)
        self.roc = indicators.require("roc", period=params.roc_period)
        self.volume = indicators.require("sma", period=params.volume_period, source="volume")
        self.market = MarketFilter(params.market, indicators, timeframe_ms(context.timeframe))
        # Donchian includes the candle it just took; a breakout is judged against the channel
        # of the candles before it, so each candle's channel is kept for the next one.
        self._prior_high: float | None = None
        self._prior_low: float | None = None

    def reset(self) -> None:
        """Forget the channel of the previous candle."""
        self._prior_high = None
        self._prior_low = None

    def _trading(self, symbol: str, timeframe: str) -> bool:
        return symbol == self.ctx.symbol and timeframe == self.ctx.timeframe

    def _remember(self) -> tuple[float | None, float | None]:
        """Store this candle's channels for the next candle; return the previous candle's."""
        prior = self._prior_high, self._prior_low
        self._prior_high = self.entry_channel.upper
        self._prior_low = self.exit_channel.lower
        return prior

    def on_history(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Keep the previous candle's channels current during warm-up."""
        if self._trading(symbol, timeframe):
            self._remember()

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Enter on a confirmed breakout while flat, exit below the exit channel."""
        if not self._trading(symbol, timeframe):
            return
        high, low = self._remember()
        ctx = self.ctx
        position = ctx.position()
        if position is None:
            if high is not None and candle.close > high and ctx.is_flat():
                self._maybe_enter(symbol, candle, high)
        elif low is not None and candle.close < low and position.closable:
            ctx.signal("exit", -1.0, symbol, candle, {"exit_channel_low": low, "close": candle.close})
            ctx.close(position, reason="channel_exit")

    def _maybe_enter(self, symbol: str, candle: Candle, high: float) -> None:
        p = self.params
        roc = self.roc.value
        if roc is None or math.isnan(roc) or roc < p.min_roc_pct:
            return
        details: dict[str, Any] = {"entry_channel_high": high, "roc_pct": roc}
        if p.volume_ratio is not None:
            average = self.volume.value
            if average is None or average <= 0:
                return
            ratio = candle.volume / average
            if ratio < p.volume_ratio:
                return
            details["volume_ratio"] = ratio
        if self.market.blocked_by("long", candle) is not None:
            return
        self.ctx.signal("entry", 1.0, symbol, candle, details)
        self.ctx.open("long", reason="breakout")

    def snapshot(self) -> dict[str, Any]:
        """The channel levels the next candle is judged against."""
        return {"entry_channel_high": self._prior_high, "exit_channel_low": self._prior_low}
