"""A test strategy that writes down each candle it is asked to decide on: a test sees how often a mind was asked."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyContext, StrategyParams


class CountingParams(StrategyParams):
    """Parameters of counting."""

    record: str = Field(default="", description="file each decided candle's open time is appended to, one a line")
    fail_warm_up: bool = Field(default=False, description="raise on the first history candle")
    fail_build: bool = Field(default=False, description="raise when built")


class Counting(Strategy[CountingParams]):
    """Appends the open time of every candle it decides on to its `record` file; never trades."""

    name = "counting"
    version = "1.0.0"

    def __init__(self, params: CountingParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        if params.fail_build:
            raise RuntimeError("build refused on purpose")
        self.record = Path(params.record)

    def on_history(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Fails on demand: a warm-up that raises."""
        if self.params.fail_warm_up:
            raise RuntimeError("warm-up refused on purpose")

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Write the candle's open time down."""
        with self.record.open("a") as out:
            out.write(f"{candle.ts}\n")
