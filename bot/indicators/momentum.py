"""Momentum oscillators: RSI and ROC."""
from __future__ import annotations

import math
from collections import deque

from bot.indicators.base import SOURCE_INDEX, check_period, check_source
from bot.ohlcv import Candle


class RSI:
    """Wilder's relative strength index of `source`, 0..100.

    The first average gain/loss is the simple mean of the first `period` changes (so the first
    value comes with the `period + 1`-th candle), then ``avg = (avg * (period - 1) + x) / period``.
    When the average loss is 0 the value is 100, also when the average gain is 0 too (a perfectly
    flat window): this is talipp's convention, kept so results match it value for value.
    talipp seeds with the mean of the first `period - 1` changes and then smooths in the
    `period`-th; that is algebraically the same seed, so only the last bits can differ.
    """

    __slots__ = ("period", "source", "value", "ready", "_src", "_n", "_nm1", "_prev_x", "_count", "_gain", "_loss")

    period: int
    source: str
    value: float | None
    ready: bool
    _src: int
    _n: float
    _nm1: float
    _prev_x: float | None
    _count: int
    _gain: float
    _loss: float

    def __init__(self, period: int = 14, source: str = "close") -> None:
        self.period = check_period("rsi", period)
        self.source = check_source("rsi", source)
        self._src = SOURCE_INDEX[source]
        self._n = float(period)
        self._nm1 = float(period - 1)
        self.reset()

    def reset(self) -> None:
        """Return to the unwarmed state."""
        self._prev_x = None
        self._count = 0
        self._gain = 0.0
        self._loss = 0.0
        self.value = None
        self.ready = False

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        x = candle[self._src]
        if self.ready:
            ch = x - self._prev_x  # type: ignore[operator]  # set whenever ready; a check would cost every candle
            self._prev_x = x
            n = self._n
            nm1 = self._nm1
            # Same operations as talipp's ``(avg * (n - 1) + gain) / n`` with a 0.0 gain or loss.
            if ch > 0.0:
                ag = (self._gain * nm1 + ch) / n
                al = (self._loss * nm1) / n
            else:
                ag = (self._gain * nm1) / n
                al = (self._loss * nm1 - ch) / n
        else:
            px = self._prev_x
            self._prev_x = x
            if px is None:
                return
            ch = x - px
            # Warm-up: `_gain`/`_loss` hold sums until `period` changes have been seen.
            if ch > 0.0:
                self._gain += ch
            else:
                self._loss -= ch
            c = self._count + 1
            self._count = c
            if c < self.period:
                return
            ag = self._gain / self._n
            al = self._loss / self._n
            self.ready = True
        self._gain = ag
        self._loss = al
        self.value = 100.0 if al == 0.0 else 100.0 - 100.0 / (1.0 + ag / al)

    def __repr__(self) -> str:
        return f"RSI(period={self.period}, source={self.source!r}, value={self.value!r})"


class ROC:
    """Rate of change of `source` in percent: ``100 * (x - x[period ago]) / x[period ago]``.

    The first value comes with the `period + 1`-th candle. If the reference value is 0 (possible
    with ``source="volume"``) the change is undefined and `value` is NaN for that candle;
    talipp raises ZeroDivisionError there instead.
    """

    __slots__ = ("period", "source", "value", "ready", "_src", "_buf")

    period: int
    source: str
    value: float | None
    ready: bool
    _src: int
    _buf: deque[float]

    def __init__(self, period: int = 10, source: str = "close") -> None:
        self.period = check_period("roc", period)
        self.source = check_source("roc", source)
        self._src = SOURCE_INDEX[source]
        self.reset()

    def reset(self) -> None:
        """Return to the unwarmed state."""
        # Holds the previous `period` inputs only; the reference value is buf[0] before appending.
        self._buf = deque(maxlen=self.period)
        self.value = None
        self.ready = False

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        x = candle[self._src]
        buf = self._buf
        if len(buf) == self.period:
            old = buf[0]
            buf.append(x)
            self.value = 100.0 * (x - old) / old if old else math.nan
            self.ready = True
        else:
            buf.append(x)

    def __repr__(self) -> str:
        return f"ROC(period={self.period}, source={self.source!r}, value={self.value!r})"
