"""Volatility: ATR."""
from __future__ import annotations

from bot.indicators.base import check_period
from bot.ohlcv import Candle


class ATR:
    """Wilder's average true range.

    Same convention as talipp's ATR (checked against its source): the first candle's true range
    is ``high - low`` (there is no previous close), later ones
    ``max(high - low, |high - prev_close|, |low - prev_close|)``; the first ATR is the mean of the
    first `period` true ranges (so it comes with the `period`-th candle, the first candle's
    ``high - low`` included), then ``atr = (atr * (period - 1) + tr) / period``.
    """

    __slots__ = ("period", "value", "ready", "tr", "_n", "_nm1", "_prev_close", "_count", "_sum")

    period: int
    value: float | None
    ready: bool
    tr: float | None
    _n: float
    _nm1: float
    _prev_close: float | None
    _count: int
    _sum: float

    def __init__(self, period: int = 14) -> None:
        self.period = check_period("atr", period)
        self._n = float(period)
        self._nm1 = float(period - 1)
        self.reset()

    def reset(self) -> None:
        """Return to the unwarmed state."""
        self._prev_close = None
        self._count = 0
        self._sum = 0.0
        self.tr = None
        self.value = None
        self.ready = False

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        h = candle[2]
        lo = candle[3]
        pc = self._prev_close
        self._prev_close = candle[4]
        # For high >= low, max(h, pc) - min(l, pc) is max(h - l, |h - pc|, |l - pc|) computed by
        # the very same float subtraction in every case, without calling max() and abs().
        tr = h - lo if pc is None else (h if h > pc else pc) - (lo if lo < pc else pc)
        self.tr = tr
        value = self.value
        if value is not None:  # set together with `ready`
            self.value = (value * self._nm1 + tr) / self._n
            return
        s = self._sum + tr
        c = self._count + 1
        self._sum = s
        self._count = c
        if c == self.period:
            self.value = s / self._n
            self.ready = True

    def __repr__(self) -> str:
        return f"ATR(period={self.period}, value={self.value!r})"
