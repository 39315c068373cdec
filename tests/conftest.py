"""Fixtures shared by every test package: slices of real recorded candles."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.candles.reader import read_candles
from bot.ohlcv import Candle
from tests.support import BTC_1M


@pytest.fixture(scope="session")
def btc_candles() -> list[Candle]:
    """The first 12,000 one-minute BTC-PERP candles (about 8 days)."""
    candles = []
    for candle in read_candles(BTC_1M):
        candles.append(candle)
        if len(candles) == 12_000:
            break
    return candles


@pytest.fixture(scope="session")
def btc_slice_file(tmp_path_factory: pytest.TempPathFactory, btc_candles: list[Candle]) -> Path:
    """The same slice as a CSV file in the shared data format."""
    path = tmp_path_factory.mktemp("data") / "BTC-USD-PERP_1m.csv"
    lines = ["ts_ms,open,high,low,close,volume"] + [",".join(repr(v) for v in c) for c in btc_candles]
    path.write_text("\n".join(lines) + "\n")
    return path
