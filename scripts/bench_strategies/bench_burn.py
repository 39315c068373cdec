"""The cluster bench's CPU-heavy strategy: it spends a fixed CPU time on every candle and never trades."""
from __future__ import annotations

import time

from pydantic import Field

from bot.ohlcv import Candle
from bot.strategy.base import Strategy, StrategyParams


class BurnParams(StrategyParams):
    """How long each candle costs."""

    burn_ms: float = Field(default=20.0, ge=0, description="CPU milliseconds spent per candle")


class BurnCpu(Strategy[BurnParams]):
    """Spins on the CPU for `burn_ms` per candle (a heavy model's stand-in).

    Only for `scripts/bench.py --suite cluster`, which compares 1 worker with 2.
    """

    name = "bench_burn"
    version = "1.0.0"

    def on_candle(self, symbol: str, timeframe: str, candle: Candle) -> None:
        """Burn the CPU time; decide nothing."""
        until = time.thread_time() + self.params.burn_ms / 1000
        while time.thread_time() < until:
            pass
