"""Clocks: event time comes from the candle clock in replay and the wall clock in live mode."""
from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current event time in UTC epoch milliseconds."""

    def now_ms(self) -> int: ...


class ReplayClock:
    """A clock advanced by the candle stream, so replayed event times never read the wall clock."""

    __slots__ = ("_now",)

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        """Return the time of the latest candle close seen."""
        return self._now

    def advance_to(self, ts_ms: int) -> None:
        """Move the clock forward (never backward) to `ts_ms`."""
        if ts_ms > self._now:
            self._now = ts_ms


class WallClock:
    """The system clock, for live trading."""

    def now_ms(self) -> int:
        """Return the current wall time."""
        return time.time_ns() // 1_000_000
