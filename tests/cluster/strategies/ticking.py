"""A test strategy that signals every candle it decides on (its open time in the signal's details) and trades on a fixed rhythm."""
from __future__ import annotations

from pydantic import Field

from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyParams

MINUTE_MS = 60_000


class TickingParams(StrategyParams):
    """Parameters of ticking."""

    every: int = Field(default=7, ge=2, description="enter when flat on each candle whose minute number is a multiple of this")
    hold: int = Field(default=4, ge=1, description="close a position this many decided candles after its entry, unless its stop went first")


class Ticking(Strategy[TickingParams]):
    """Signals `tick` on every candle it decides on; enters long when flat every `every` minutes and closes after `hold` candles.

    Its decisions depend only on the candle and its book: a mind warmed anew decides as the old one did.
    """

    name = "ticking"
    version = "1.0.0"

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Signal, then trade on the rhythm."""
        self.ctx.signal("tick", 1.0, symbol, candle, {"open": candle.ts})
        position = self.ctx.position(symbol)
        if position is None:
            if self.ctx.is_flat(symbol) and (candle.ts // MINUTE_MS) % self.params.every == 0:
                self.ctx.open("long", symbol)
        elif (candle.ts - position.entry_ts) // MINUTE_MS >= self.params.hold:
            self.ctx.close(position)
