"""Exponential backoff with full jitter; the random source is injected so tests are exact."""
from __future__ import annotations

import random as _random
from collections.abc import Callable


class Backoff:
    """Delays min_s, 2*min_s, 4*min_s ... capped at max_s, each scaled by a jitter factor in [1-jitter, 1].

    Jitter keeps many clients that lost the same server from reconnecting in lockstep.
    """

    def __init__(self, min_s: float, max_s: float, jitter: float = 0.5, random: Callable[[], float] = _random.random) -> None:
        if min_s <= 0 or max_s < min_s:
            raise ValueError("need 0 < min_s <= max_s")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")
        self._min = min_s
        self._max = max_s
        self._jitter = jitter
        self._random = random
        self.attempts = 0

    def next_delay(self, floor_s: float | None = None) -> float:
        """The delay before the next attempt; at least `floor_s` (a server's Retry-After) when given."""
        base = min(self._max, self._min * (1 << min(self.attempts, 62)))
        self.attempts += 1
        delay = base * (1 - self._jitter * self._random())
        return max(delay, floor_s) if floor_s is not None else delay

    def reset(self) -> None:
        """Start again from the shortest delay (after a success)."""
        self.attempts = 0
