"""Mean reversion: buy an oversold dip below the lower Bollinger band, sell at the middle band."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.base import Strategy, StrategyContext, StrategyParams
from bot.strategy.conditions import MarketConditions, MarketFilter


class MeanReversionParams(StrategyParams):
    """Parameters of mean_reversion."""

    bb_period: int = Field(default=20, ge=2, description="candles in the Bollinger bands")
    bb_k: float = Field(default=2.0, gt=0, le=10, description="band width in population standard deviations")
    rsi_period: int = Field(default=14, ge=2, description="period of Wilder's RSI of the close")
    oversold: float = Field(default=30.0, gt=0, lt=50, description="RSI at or below this counts as oversold")
    market: MarketConditions = Field(default=MarketConditions(), description="market conditions required before an entry (all off by default)")


class MeanReversion(Strategy[MeanReversionParams]):
    """Long-only mean reversion: buys when the close is at or below the lower Bollinger band and
    RSI is at or below `oversold`, sells everything when the close is back at or above the
    middle band (the mean).

    The hard stop is the strategy file's `exits.stop_loss_pct` (enforced intrabar by the
    position manager); always set one, because a dip that turns into a trend never reaches
    the mean. Suits ranging, liquid markets on 1m-15m candles; in a strong downtrend it buys
    every leg down, so add a `market.max_adx` (ranging regime) or `market.trend_ema` condition
    there.
    """

    name = "mean_reversion"
    version = "1.0.0"

    def __init__(self, params: MeanReversionParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        indicators = context.indicators()
        self.bands = indicators.require("bollinger", period=params.bb_period, k=params.bb_k)
        self.rsi = indicators.require("rsi", period=params.rsi_period)
        self.market = MarketFilter(params.market, indicators, timeframe_ms(context.timeframe))

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Enter oversold below the lower band while flat; exit at the middle band."""
        ctx = self.ctx
        if symbol != ctx.symbol or timeframe != ctx.timeframe:
            return
        bands, rsi = self.bands, self.rsi.value
        lower, middle = bands.lower, bands.value
        if lower is None or middle is None or rsi is None:
            return
        close = candle.close
        position = ctx.position()
        if position is None:
            if close <= lower and rsi <= self.params.oversold and ctx.is_flat() and self.market.blocked_by("long", candle) is None:
                details: dict[str, Any] = {"close": close, "lower_band": lower, "middle_band": middle, "rsi": rsi}
                ctx.signal("entry", 1.0, symbol, candle, details)
                ctx.open("long", reason="oversold")
        elif close >= middle and position.closable:
            ctx.signal("exit", -1.0, symbol, candle, {"close": close, "middle_band": middle, "rsi": rsi})
            ctx.close(position, reason="mean")
