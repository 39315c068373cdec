"""Fixtures of the live tests: the recorded candles the fake exchange serves."""
from __future__ import annotations

import pytest

from bot.candles.reader import read_candles
from bot.ohlcv import Candle
from tests.support import ETH_1M


@pytest.fixture(scope="session")
def eth() -> list[Candle]:
    """Every ETH/BTC 1m candle of the shared recording, as replay reads them."""
    return list(read_candles(ETH_1M))
