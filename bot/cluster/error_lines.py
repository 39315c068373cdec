"""Log lines for repeated errors: one per kind per interval, the ones held back counted into the next."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

# At most one line per kind of error in this many seconds of the injected (monotonic) clock.
ERROR_LINE_INTERVAL_S = 60.0


@dataclass
class _Kind:
    logged_at: float
    held: int = 0


class ErrorLines:
    """Warnings rate-limited per kind: the first at once, then at most one per `interval` with the count held back since.

    A server that is down makes the client fail every fraction of a second; the log says so once
    a minute, not thousands of times.
    """

    def __init__(self, logger: logging.Logger, clock: Callable[[], float], interval: float = ERROR_LINE_INTERVAL_S) -> None:
        self._log = logger
        self._clock = clock
        self._interval = interval
        self._kinds: dict[str, _Kind] = {}

    def __call__(self, kind: str, message: str) -> bool:
        """Log `message` if no line of `kind` was logged within the interval, else count it; whether it was logged."""
        now = self._clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen.logged_at < self._interval:
            seen.held += 1
            return False
        held = f" ({seen.held} more like it since the last line)" if seen is not None and seen.held else ""
        self._log.warning("%s%s", message, held)
        self._kinds[kind] = _Kind(now)
        return True

    def held(self) -> int:
        """How many errors were counted but not logged since their kind's last line."""
        return sum(kind.held for kind in self._kinds.values())
