"""Checking one OHLCV row from an exchange before it becomes a Candle."""
from __future__ import annotations

import math
from collections.abc import Sequence

from bot.ohlcv import Candle


class BadRow(ValueError):
    """An OHLCV row that is not a valid candle; the message says why."""


def to_candle(row: Sequence[object], tf_ms: int) -> Candle:
    """A Candle from `[ts, open, high, low, close, volume]`, or BadRow naming the problem."""
    if len(row) < 6:
        raise BadRow(f"expected 6 fields, got {len(row)}")
    ts = row[0]
    if type(ts) is not int:
        raise BadRow(f"timestamp is not an integer: {ts!r}")
    if ts % tf_ms:
        raise BadRow(f"timestamp {ts} is not on a {tf_ms} ms boundary")
    values: list[float] = []
    for name, value in zip(("open", "high", "low", "close", "volume"), row[1:6]):
        if type(value) is not int and type(value) is not float:
            raise BadRow(f"{name} is not a number: {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise BadRow(f"{name} is not finite: {value!r}")
        values.append(number)
    o, h, lo, c, v = values
    if not (0 < lo <= o <= h and lo <= c <= h):
        raise BadRow(f"prices inconsistent: open {o}, high {h}, low {lo}, close {c}")
    if v < 0:
        raise BadRow(f"negative volume {v}")
    return Candle(ts, o, h, lo, c, v)
