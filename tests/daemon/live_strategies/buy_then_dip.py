"""Buys once at market, then rests one limit buy at a set price: a test strategy for live trading."""
from __future__ import annotations

from pydantic import Field

from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyContext, StrategyParams


class BuyThenDipParams(StrategyParams):
    """Parameters of buy_then_dip."""

    limit_price: float = Field(default=0.01, gt=0, description="price of the resting limit buy")
    limit_quantity: float = Field(default=0.2, gt=0, description="quantity of the resting limit buy")


class BuyThenDip(Strategy[BuyThenDipParams]):
    """On its first live candle with nothing open or pending: a market buy of the configured quantity and a limit buy below."""

    name = "buy_then_dip"
    version = "1.0.0"
    Params = BuyThenDipParams

    def __init__(self, params: BuyThenDipParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self.p = params

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Act once: never again while anything of it is open or pending (a restart restores both)."""
        ctx = self.ctx
        if ctx.positions() or not ctx.is_flat():
            return
        ctx.open("long", reason="first_candle")
        ctx.open("long", quantity=self.p.limit_quantity, reason="dip", limit_price=self.p.limit_price)
