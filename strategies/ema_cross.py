"""EMA crossover: the trend-following baseline of the catalog."""
from __future__ import annotations

from pydantic import Field, model_validator

from bot.indicators.averages import crossing
from bot.ohlcv import Candle, timeframe_ms
from bot.strategy.base import Strategy, StrategyContext, StrategyParams
from bot.strategy.conditions import MarketConditions, MarketFilter


class EmaCrossParams(StrategyParams):
    """Parameters of ema_cross."""

    fast: int = Field(default=12, ge=1, description="period of the fast EMA")
    slow: int = Field(default=26, ge=2, description="period of the slow EMA")
    market: MarketConditions = MarketConditions()

    @model_validator(mode="after")
    def _fast_below_slow(self) -> EmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class EmaCross(Strategy[EmaCrossParams]):
    """Long-only EMA crossover: buys when the fast EMA crosses above the slow one while flat and
    the market conditions hold, sells everything when it crosses back below.

    Suits trending markets on 15m-4h candles; in a sideways market it whipsaws (many small
    losses), so pair it with a volatility or ADX condition there.
    """

    name = "ema_cross"
    version = "1.0.0"

    def __init__(self, params: EmaCrossParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        indicators = context.indicators()
        self.fast = indicators.require("ema", period=params.fast)
        self.slow = indicators.require("ema", period=params.slow)
        self.market = MarketFilter(params.market, indicators, timeframe_ms(context.timeframe))

    def cross(self) -> int:
        """+1 when the fast EMA went from below to above the slow one on this candle, -1 for the reverse, else 0."""
        return crossing(self.fast, self.slow)

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Enter on an upward cross, exit on a downward one."""
        ctx = self.ctx
        cross = self.cross()
        if cross == 0:
            return
        position = ctx.position()
        if cross > 0 and position is None and ctx.is_flat():
            blocked = self.market.blocked_by("long", candle)
            if blocked is None:
                ctx.signal("entry", 1.0, symbol, candle, {"ema_cross": 1.0})
                ctx.open("long")
        elif cross < 0 and position is not None and position.closable:
            ctx.signal("exit", -1.0, symbol, candle, {"ema_cross": -1.0})
            ctx.close(position)
