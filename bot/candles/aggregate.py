"""Folding base candles into higher-timeframe candles aligned to UTC epoch boundaries."""
from __future__ import annotations

from bot.ohlcv import Candle

# Returned for the common "nothing completed" case so the hot path allocates nothing.
EMPTY: tuple[Candle, ...] = ()
# Bucket end meaning "no bucket pending": no real timestamp is below it.
_NO_BUCKET = -(2**63)
_new_tuple = tuple.__new__


class Aggregator:
    """Builds UTC-aligned higher-timeframe candles from an ascending stream of base candles."""

    __slots__ = ("base_ms", "target_ms", "_start", "_end", "_last", "_prev", "_o", "_h", "_l", "_c", "_v")

    def __init__(self, base_ms: int, target_ms: int) -> None:
        """Aggregate `base_ms` candles into `target_ms` ones; target must be a larger multiple of base."""
        for label, value in (("base_ms", base_ms), ("target_ms", target_ms)):
            if type(value) is not int or value <= 0:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if target_ms <= base_ms or target_ms % base_ms:
            raise ValueError(
                f"target_ms {target_ms} must be a multiple of base_ms {base_ms} and larger than it"
            )
        self.base_ms = base_ms
        self.target_ms = target_ms
        self._start = 0
        self._end = _NO_BUCKET
        self._last = 0
        self._prev = _NO_BUCKET
        self._o = self._h = self._l = self._c = self._v = 0.0

    def add(self, candle: Candle) -> tuple[Candle, ...]:
        """Feed the next base candle; return the higher-timeframe candles it completes (usually none)."""
        ts, o, h, lo, c, v = candle
        if ts <= self._prev:
            raise ValueError(f"candle ts {ts} is not after the previous one, {self._prev}")
        self._prev = ts
        if ts < self._end:
            # Same bucket as the pending one (_end is _NO_BUCKET when none is pending).
            if h > self._h:
                self._h = h
            if lo < self._l:
                self._l = lo
            self._c = c
            self._v += v
            if ts != self._last:
                return EMPTY
            self._end = _NO_BUCKET
            return (_new_tuple(Candle, (self._start, self._o, self._h, self._l, c, self._v)),)
        # A new bucket: whatever is pending was left incomplete by a gap and is closed now.
        closed = EMPTY
        if self._end != _NO_BUCKET:
            closed = (_new_tuple(Candle, (self._start, self._o, self._h, self._l, self._c, self._v)),)
        start = ts - ts % self.target_ms
        last = start + self.target_ms - self.base_ms
        if ts == last:
            self._end = _NO_BUCKET
            return closed + (_new_tuple(Candle, (start, o, h, lo, c, v)),)
        self._start = start
        self._end = start + self.target_ms
        self._last = last
        self._o, self._h, self._l, self._c, self._v = o, h, lo, c, v
        return closed

    def pending(self) -> Candle | None:
        """Return the partial candle in progress, or None; it is never emitted at end of stream."""
        if self._end == _NO_BUCKET:
            return None
        return _new_tuple(Candle, (self._start, self._o, self._h, self._l, self._c, self._v))
