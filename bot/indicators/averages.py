"""Moving averages: SMA and EMA."""
from __future__ import annotations

import math
from collections import deque

from bot.indicators.base import SOURCE_INDEX, check_period, check_source
from bot.ohlcv import Candle

# A running sum's rounding error is relative to the largest values that have passed through it
# (a volume spike, a price that has since fallen) and it accumulates. Recomputing the sum from
# the window with math.fsum every max(period, 64) updates bounds both for well under one float
# addition per update on average. A compensated (TwoSum) running sum would be tighter still but
# measured ~1.8x slower per update.
_RESYNC_MIN_INTERVAL = 64


class SMA:
    """Simple moving average of the last `period` values of `source` (running sum, O(1) update)."""

    __slots__ = ("period", "source", "value", "ready", "_src", "_n", "_buf", "_sum", "_resync_in", "_resync_every")

    period: int
    source: str
    value: float | None
    ready: bool
    _src: int
    _n: float
    _buf: deque[float]
    _sum: float
    _resync_in: int
    _resync_every: int

    def __init__(self, period: int, source: str = "close") -> None:
        self.period = check_period("sma", period)
        self.source = check_source("sma", source)
        self._src = SOURCE_INDEX[source]
        self._n = float(period)
        self._resync_every = max(period, _RESYNC_MIN_INTERVAL)
        self.reset()

    def reset(self) -> None:
        """Return to the unwarmed state."""
        # deque(maxlen) measured faster than a list ring buffer with a manual index.
        self._buf = deque(maxlen=self.period)
        self._sum = 0.0
        self._resync_in = self._resync_every
        self.value = None
        self.ready = False

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        x = candle[self._src]
        buf = self._buf
        if self.ready:
            s = self._sum + (x - buf[0])
            buf.append(x)
            left = self._resync_in - 1
            if left:
                self._resync_in = left
            else:
                s = math.fsum(buf)
                self._resync_in = self._resync_every
            self._sum = s
            self.value = s / self._n
        else:
            buf.append(x)
            s = self._sum + x
            self._sum = s
            if len(buf) == self.period:
                self.value = s / self._n
                self.ready = True

    def __repr__(self) -> str:
        return f"SMA(period={self.period}, source={self.source!r}, value={self.value!r})"


class EMA:
    """Exponential moving average seeded with the simple average of its first `period` values.

    After the seed, ``value = a * x + (1 - a) * value`` with ``a = 2 / (period + 1)``, exactly as
    talipp computes it (bit-identical). `prev` is the value before the latest update (None until
    one update after warm-up), for cross detection.
    """

    __slots__ = ("period", "source", "value", "prev", "ready", "_src", "_a", "_b", "_sum", "_count")

    period: int
    source: str
    value: float | None
    prev: float | None
    ready: bool
    _src: int
    _a: float
    _b: float
    _sum: float
    _count: int

    def __init__(self, period: int, source: str = "close") -> None:
        self.period = check_period("ema", period)
        self.source = check_source("ema", source)
        self._src = SOURCE_INDEX[source]
        self._a = 2.0 / (period + 1.0)
        self._b = 1.0 - self._a
        self.reset()

    def reset(self) -> None:
        """Return to the unwarmed state."""
        self._sum = 0.0
        self._count = 0
        self.value = None
        self.prev = None
        self.ready = False

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        x = candle[self._src]
        v = self.value
        self.prev = v
        if v is not None:
            self.value = self._a * x + self._b * v
            return
        # Warm-up: no buffer is needed, the seed is just the mean of the first `period` inputs.
        s = self._sum + x
        c = self._count + 1
        self._sum = s
        self._count = c
        if c == self.period:
            self.value = s / self.period
            self.ready = True

    def __repr__(self) -> str:
        return f"EMA(period={self.period}, source={self.source!r}, value={self.value!r})"


def crossing(fast: EMA, slow: EMA) -> int:
    """+1 when `fast` went from below `slow` to above it on the last candle, -1 for the reverse, else 0."""
    if fast.prev is None or slow.prev is None or fast.value is None or slow.value is None:
        return 0
    before = fast.prev - slow.prev
    now = fast.value - slow.value
    return 1 if before < 0.0 < now else -1 if before > 0.0 > now else 0
