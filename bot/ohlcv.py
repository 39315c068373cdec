"""The candle value type and timeframe arithmetic."""
from __future__ import annotations

from typing import NamedTuple

# The largest price or volume a candle may hold: far above any real market, yet small enough
# that amounts built from it (quantity x price, sums of fees) stay exact enough and finite.
MAX_VALUE = 1e12

# A NamedTuple rather than a dataclass: immutable, and built by the C tuple constructor,
# which matters on the replay hot path (hundreds of thousands of candles per second).


class Candle(NamedTuple):
    """One OHLCV bar; `ts` is the UTC epoch milliseconds of the candle's open time."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


def timeframe_ms(timeframe: str) -> int:
    """Return the length of a timeframe in milliseconds, or raise ValueError naming it."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        known = ", ".join(TIMEFRAME_MS)
        raise ValueError(f"unknown timeframe {timeframe!r} (known: {known})") from None


def timeframe_of_ms(ms: int) -> str | None:
    """Return the timeframe name whose length is `ms`, or None."""
    for name, length in TIMEFRAME_MS.items():
        if length == ms:
            return name
    return None
