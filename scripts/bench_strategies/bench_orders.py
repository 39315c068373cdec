"""The bench's market-order case: a strategy that trades on every candle, and its twin that never trades."""
from __future__ import annotations

from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyParams


class FlipEveryCandle(Strategy[StrategyParams]):
    """Opens a long at market when flat and closes it on the next candle: one market order per candle.

    Only for `scripts/bench.py --suite order`, which times the whole path of an order.
    """

    name = "bench_flip"
    version = "1.0.0"

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Close what is open, else open."""
        ctx = self.ctx
        position = ctx.position()
        if position is None:
            if ctx.is_flat():
                ctx.open("long")
        elif position.closable:
            ctx.close(position)


class NeverTrade(Strategy[StrategyParams]):
    """Sees every candle and does nothing: the baseline the order case's time is measured from.

    Only for `scripts/bench.py --suite order`.
    """

    name = "bench_idle"
    version = "1.0.0"

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Decide nothing."""
