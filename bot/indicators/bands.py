"""Price bands: Bollinger Bands and Donchian channels."""
from __future__ import annotations

import math
from collections import deque

from bot.indicators.base import SOURCE_INDEX, check_period, check_positive_float, check_source
from bot.ohlcv import Candle

# Bollinger keeps running sums s1 = sum(d), s2 = sum(d^2) of deviations d = x - shift. The
# variance var = s2/n - (s1/n)^2 is exact in real arithmetic for any shift, but in floats its
# error is ~1e-16 times the largest s2 seen since the sums were last recomputed. So the shift is
# re-centred on the latest input and both sums recomputed from the window with fsum (O(period),
# O(1) amortised):
# * when that peak exceeds `limit * n * var`, i.e. more than ~4 of the 16 significant digits
#   would cancel (the mean drifted far from the shift, or volatility collapsed after a spike);
# * and every max(period, 64) updates anyway, to discard accumulated rounding.
# This also makes a flat window exactly zero-width. Right after a re-centre on a window member,
# (x - mean)^2 <= (n - 1) * var, so s2 <= n^2 * var: with limit >= n a re-centre always clears
# the condition, and cannot repeat on every update unless the data keep forcing it.
_REBASE_MIN_INTERVAL = 64
_CANCELLATION_LIMIT = 1e4


class BollingerBands:
    """Bollinger Bands: `value` is the middle band (SMA), with `upper`, `lower` and `width`.

    ``upper/lower = middle +/- k * std`` where std is the *population* standard deviation of the
    last `period` values (divides by `period`), as talipp's BB/StdDev do. ``width = upper - lower``
    in price units (not normalised by the middle band). The variance is kept from running sums of
    deviations from a shift value re-centred inside the window, so it stays accurate at any price
    level (no naive sum-of-squares cancellation) and O(1) amortised per update.
    """

    __slots__ = (
        "period", "k", "source", "value", "upper", "lower", "width", "ready",
        "_src", "_n", "_buf", "_shift", "_s1", "_s2", "_peak", "_rebase_in", "_rebase_every", "_limit",
    )

    period: int
    k: float
    source: str
    value: float | None
    upper: float | None
    lower: float | None
    width: float | None
    ready: bool
    _src: int
    _n: float
    _buf: deque[float]
    _shift: float
    _s1: float
    _s2: float
    _peak: float
    _rebase_in: int
    _rebase_every: int
    _limit: float

    def __init__(self, period: int = 20, k: float = 2.0, source: str = "close") -> None:
        self.period = check_period("bollinger", period)
        self.k = check_positive_float("bollinger", k, "k")
        self.source = check_source("bollinger", source)
        self._src = SOURCE_INDEX[source]
        self._n = float(period)
        self._rebase_every = max(period, _REBASE_MIN_INTERVAL)
        self._limit = max(_CANCELLATION_LIMIT, 4.0 * period) * period
        self.reset()

    def reset(self) -> None:
        """Return to the unwarmed state."""
        self._buf = deque(maxlen=self.period)
        self._shift = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._peak = 0.0
        self._rebase_in = self._rebase_every
        self.value = None
        self.upper = None
        self.lower = None
        self.width = None
        self.ready = False

    def _rebase(self) -> None:
        # Rare (see the module comment), so the allocation here is not per-update.
        buf = self._buf
        shift = buf[-1]
        devs = [v - shift for v in buf]
        s2 = math.fsum([d * d for d in devs])
        self._shift = shift
        self._s1 = math.fsum(devs)
        self._s2 = s2
        self._peak = s2
        self._rebase_in = self._rebase_every

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        x = candle[self._src]
        buf = self._buf
        n = self._n
        if self.ready:
            shift = self._shift
            d = x - shift
            do = buf[0] - shift
            buf.append(x)
            s1 = self._s1 + (d - do)
            s2 = self._s2 + (d * d - do * do)
            peak = self._peak
            if s2 > peak:
                peak = self._peak = s2
            left = self._rebase_in - 1
            self._rebase_in = left
        else:
            if not buf:
                self._shift = x
            shift = self._shift
            d = x - shift
            buf.append(x)
            s1 = self._s1 + d
            s2 = self._s2 + d * d
            self._s1 = s1
            self._s2 = s2
            if s2 > self._peak:
                self._peak = s2
            if len(buf) < self.period:
                return
            self.ready = True
            peak = self._peak
            left = self._rebase_in
        m = s1 / n
        var = s2 / n - m * m
        if left and peak <= self._limit * var:
            self._s1 = s1
            self._s2 = s2
        else:
            self._rebase()
            shift = self._shift
            m = self._s1 / n
            var = self._s2 / n - m * m
        # An exact zero can still come out a hair negative.
        band = self.k * math.sqrt(var) if var > 0.0 else 0.0
        mid = shift + m
        upper = mid + band
        lower = mid - band
        self.value = mid
        self.upper = upper
        self.lower = lower
        self.width = upper - lower

    def __repr__(self) -> str:
        return (
            f"BollingerBands(period={self.period}, k={self.k}, source={self.source!r}, "
            f"lower={self.lower!r}, value={self.value!r}, upper={self.upper!r})"
        )


class Donchian:
    """Donchian channel: `upper` = highest high, `lower` = lowest low of the last `period` candles.

    `value` is the middle, ``(upper + lower) / 2``; the current candle is part of the window, as
    in talipp's DonchianChannels. Amortised O(1): monotonic deques of candidate extremes.
    """

    __slots__ = ("period", "value", "upper", "lower", "ready", "_highs", "_lows", "_maxq", "_minq")

    period: int
    value: float | None
    upper: float | None
    lower: float | None
    ready: bool
    _highs: deque[float]
    _lows: deque[float]
    _maxq: deque[float]
    _minq: deque[float]

    def __init__(self, period: int = 20) -> None:
        self.period = check_period("donchian", period)
        self.reset()

    def reset(self) -> None:
        """Return to the unwarmed state."""
        # The raw windows tell which value leaves; the candidate deques store values rather
        # than (index, value) pairs so an update allocates no tuples. Equal values are kept
        # (only strictly dominated ones are dropped), so "front == leaving value" identifies
        # the leaving candle itself.
        self._highs = deque(maxlen=self.period)
        self._lows = deque(maxlen=self.period)
        self._maxq = deque()
        self._minq = deque()
        self.value = None
        self.upper = None
        self.lower = None
        self.ready = False

    def update(self, candle: Candle) -> None:
        """Consume the next closed candle."""
        h = candle[2]
        lo = candle[3]
        highs = self._highs
        lows = self._lows
        mx = self._maxq
        mn = self._minq
        if self.ready:
            if highs[0] == mx[0]:
                mx.popleft()
            if lows[0] == mn[0]:
                mn.popleft()
        highs.append(h)
        lows.append(lo)
        while mx and mx[-1] < h:
            mx.pop()
        mx.append(h)
        while mn and mn[-1] > lo:
            mn.pop()
        mn.append(lo)
        if self.ready or len(highs) == self.period:
            upper = mx[0]
            lower = mn[0]
            self.upper = upper
            self.lower = lower
            self.value = (upper + lower) / 2.0
            self.ready = True

    def __repr__(self) -> str:
        return (
            f"Donchian(period={self.period}, lower={self.lower!r}, value={self.value!r}, "
            f"upper={self.upper!r})"
        )
